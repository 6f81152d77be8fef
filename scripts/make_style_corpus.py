"""Assemble the style corpus of issue 47 from what is installed here, with a held-out split.

    python scripts/make_style_corpus.py [--out outputs/style_corpus] [--procedural 300]

Writes `<out>/train/*.png` (what painting models learn from), `<out>/heldout/*.png` (evaluation
only: sources no training draws on) and `<out>/manifest.json` (each image's file, source,
origin and licence), then prints a table of the sources. The packages it reads are Debian's
gimp-data, krita-data, mypaint-data, plasma-workspace-wallpapers, gnome-backgrounds and
gcompris-qt-data (`apt-get install` them; a source not installed gives no images), with
`../shared`'s paintings and procedural ones (fastnst.training.procedural). The images are not
the project's to commit: keep them out of the repository.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from fastnst.shared_data import SHARED
from fastnst.training.style_corpus import assemble

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "style_corpus")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--procedural", type=int, default=300, help="procedural paintings")
    args = parser.parse_args()
    entries = assemble(args.out, args.shared, args.procedural,
                       progress=lambda source, n: print(f"  {source}: {n}", flush=True))
    counts = Counter((e.split, e.source) for e in entries)
    licences = {e.source: e.licence for e in entries}
    print("\n| split | source | images | licence |\n|---|---|---|---|")
    for (split, source), n in sorted(counts.items()):
        print(f"| {split} | {source} | {n} | {licences[source][:90]} |")
    for split in ("train", "heldout"):
        print(f"{split}: {sum(n for (s, _), n in counts.items() if s == split)} images")
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
