"""The style corpus (issue 47): the images a painting model learns from, assembled from what is
installed here, and a held-out split by source for evaluation only.

Sources are Debian packages (their images read where the package installs them, its licence
taken from its `copyright` file), `../shared`'s paintings, and procedurally made paintings
(fastnst.training.procedural). Each source is wholly in one split: no held-out painting shares
a source with what trains. Nothing is copied into the repository: `assemble` writes the corpus
to a folder of the user's (`outputs/style_corpus`), with `manifest.json` naming each image's
source, licence and split.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fastnst.training import procedural

SIDE = 256  # pixels: each image's long side in the corpus (as the painting path takes one)
MIN_SIDE = 48  # pixels: smaller textures are tiled up to this before they are used
TRAIN, HELDOUT = "train", "heldout"
# Paintings of ../shared that the shipped models trained on (training may use them) and those
# held out (la_muse and rain_princess are still under copyright: evaluation only, never shipped).
SHIPPED_PAINTINGS = ("composition_vii", "great_wave", "mosaic", "shipwreck", "starry_night",
                     "the_scream", "udnie", "woman_with_hat")
HELDOUT_PAINTINGS = ("candy", "feathers", "la_muse", "rain_princess")
# gcompris-qt-data's "paintings" puzzles left out of the held-out split: the same painting as a
# shipped style (Hokusai's Great Wave), and a sculpture.
GCOMPRIS_LEFT_OUT = ("GreatWave", "Michelangelo_Pieta")


@dataclass(frozen=True)
class Entry:
    """One image of the corpus: its file (relative to the corpus folder), the source it came
    from (a package or `procedural`), where in it, its licence, and its split."""

    file: str
    source: str
    origin: str
    licence: str
    split: str


def package_licence(package: str, doc_root: Path = Path("/usr/share/doc")) -> str:
    """The licences a Debian package's `copyright` file names (its `License:` lines, joined), or
    "see its copyright file" when it names none in that form."""
    path = doc_root / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "unknown (no copyright file)"
    names = list(dict.fromkeys(m.strip() for m in re.findall(r"^License:\s*(.+)$", text, re.M)))
    return "; ".join(names[:4]) + f" ({path})" if names else f"see {path}"


def read_gimp_pattern(data: bytes) -> np.ndarray:
    """A GIMP pattern (`.pat`, also Krita's): `(H, W, 3)` uint8 RGB. ValueError for anything
    else. Header: size, version, width, height, bytes per pixel (1-4), "GPAT", a name."""
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise ValueError("not a GIMP pattern")
    header, _, width, height, depth = struct.unpack(">IIIII", data[:20])
    if not (1 <= depth <= 4 and 0 < width <= 8192 and 0 < height <= 8192):
        raise ValueError("a GIMP pattern of unreadable size")
    pixels = np.frombuffer(data, np.uint8, width * height * depth, header)
    pixels = pixels.reshape(height, width, depth)
    if depth in (1, 2):
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def qt_resources(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The files in a Qt resource bundle (`.rcc`, format 1-3): `(path, bytes)`, zlib-packed
    ones unpacked (zstd-packed ones are passed over)."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource bundle")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset:names + offset + 2])
        return data[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        at = tree + index * size
        name_offset, flags = struct.unpack(">IH", data[at:at + 6])
        here = prefix + (name(name_offset) if index else "")
        if flags & 2:  # a folder
            count, first = struct.unpack(">II", data[at + 6:at + 14])
            stack += [(first + k, here + "/") for k in range(count)]
            continue
        (offset,) = struct.unpack(">I", data[at + 10:at + 14])
        (length,) = struct.unpack(">I", data[payload + offset:payload + offset + 4])
        raw = data[payload + offset + 4:payload + offset + 4 + length]
        if flags & 4:
            continue
        yield here, zlib.decompress(raw[4:]) if flags & 1 else raw


def gcompris_paintings(bundle: bytes) -> Iterator[tuple[str, np.ndarray]]:
    """The whole paintings of gcompris' "paintings" puzzles (`paintings.rcc`), each put together
    from its pieces where its board places them: `(name, (H, W, 3) uint8)`."""
    files = dict(qt_resources(bundle))
    for path, text in sorted(files.items()):
        if not re.search(r"/board/board\d+_0\.qml$", path):
            continue
        board = text.decode(errors="replace")
        size = re.search(r'"width"\s*:\s*(\d+),\s*"height"\s*:\s*(\d+)', board)
        pieces = re.findall(r'"pixmapfile"\s*:\s*"([^"]+\.webp)",\s*"x"\s*:\s*"([\d.]+)",\s*'
                            r'"y"\s*:\s*"([\d.]+)"', board)
        if not size or not pieces:
            continue
        width, height = int(size.group(1)), int(size.group(2))
        canvas = Image.new("RGBA", (width, height))
        for file, x, y in pieces:
            key = next((k for k in files if k.endswith("/" + Path(file).name)), None)
            if key is None:
                continue
            piece = Image.open(io.BytesIO(files[key])).convert("RGBA")
            canvas.alpha_composite(piece, (round(float(x) * width - piece.width / 2),
                                           round(float(y) * height - piece.height / 2)))
        box = canvas.getchannel("A").point(lambda a: 255 if a > 200 else 0).getbbox()
        if box is None:
            continue
        name = re.sub(r"[_-]?[a-z]?\d*$", "", Path(pieces[0][0]).stem).strip("_-")
        yield name, np.asarray(canvas.crop(box).convert("RGB"))


def fit(image: np.ndarray, side: int = SIDE) -> np.ndarray:
    """`image` `(H, W, 3)` uint8 with its long side `side`: a texture smaller than MIN_SIDE is
    tiled up to it first, then the whole is scaled (Lanczos)."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        image = np.tile(image, (-(-MIN_SIDE // h), -(-MIN_SIDE // w), 1))
        h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


Source = Callable[[], Iterator[tuple[str, np.ndarray]]]


def _image_files(folder: Path, suffixes: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
                 ) -> Iterator[tuple[str, np.ndarray]]:
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            try:
                with Image.open(path) as image:
                    image.draft("RGB", (SIDE * 2, SIDE * 2))  # JPEG: decoded near the size used
                    yield str(path), np.asarray(image.convert("RGB"))
            except (OSError, ValueError):
                continue


def _patterns(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    for path in sorted(folder.rglob("*.pat")):
        try:
            yield str(path), read_gimp_pattern(path.read_bytes())
        except (OSError, ValueError):
            continue
    yield from _image_files(folder)


def sources(shared: Path, procedural_count: int = 300, root: Path = Path("/")
            ) -> dict[str, tuple[str, Source]]:
    """`{source: (split, images)}`: every source the corpus draws on, and the held-out ones.
    `shared` is `../shared`; `root` the file system the packages are installed in."""
    usr = root / "usr" / "share"
    palette_files = sorted((usr / "mypaint" / "palettes").glob("*.gpl"))
    palettes = [procedural.read_gpl(p) for p in palette_files]
    styles = shared / "data" / "styles"

    def made() -> Iterator[tuple[str, np.ndarray]]:
        for seed in range(procedural_count):
            family = procedural.FAMILIES[seed % len(procedural.FAMILIES)]
            yield f"seed {seed}, {family}", procedural.painting(seed, palettes, family)

    def shared_paintings(names: tuple[str, ...]) -> Source:
        return lambda: (item for item in _image_files(styles) if Path(item[0]).stem in names)

    def gcompris() -> Iterator[tuple[str, np.ndarray]]:
        bundle = usr / "gcompris-qt" / "rcc" / "paintings.rcc"
        if bundle.is_file():
            for name, image in gcompris_paintings(bundle.read_bytes()):
                if name not in GCOMPRIS_LEFT_OUT:
                    yield f"{bundle}: {name}", image

    return {
        "procedural": (TRAIN, made),
        "shared-shipped": (TRAIN, shared_paintings(SHIPPED_PAINTINGS)),
        "gimp-data": (TRAIN, lambda: _patterns(usr / "gimp" / "2.0" / "patterns")),
        "krita-data": (TRAIN, lambda: _patterns(usr / "krita" / "patterns")),
        "mypaint-data": (TRAIN, lambda: _image_files(usr / "mypaint" / "backgrounds")),
        "plasma-workspace-wallpapers": (TRAIN, lambda: (
            item for item in _image_files(usr / "wallpapers") if "/contents/images/" in item[0]
            and not Path(item[0]).name.startswith(("1080", "720")))),  # one size a wallpaper
        "gnome-backgrounds": (TRAIN, lambda: _image_files(usr / "backgrounds" / "gnome")),
        "shared-heldout": (HELDOUT, shared_paintings(HELDOUT_PAINTINGS)),
        "gcompris-qt-data": (HELDOUT, gcompris),
    }


def _slug(origin: str) -> str:
    """A short file-name part saying what an image is (its painting's or file's name)."""
    name = origin.rsplit(": ", 1)[-1]
    name = Path(name).parents[2].name if "/contents/images/" in name else Path(name).stem
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:40] or "image"


_LICENCES = {"procedural": "made by fastnst (MIT)",
             "shared-shipped": "public domain (../shared/data/styles/SOURCES.md)",
             "shared-heldout": "see ../shared/data/styles/SOURCES.md (evaluation only)"}


def assemble(out: Path, shared: Path, procedural_count: int = 300, root: Path = Path("/"),
             progress: Callable[[str, int], None] | None = None) -> list[Entry]:
    """Write every image of `sources` to `out/<split>/<source>-<n>.png` at SIDE px (flat images
    and near-duplicate sizes of one wallpaper left out) and `out/manifest.json`; return the
    entries. A source that is not installed gives none."""
    entries: list[Entry] = []
    for source, (split, images) in sources(shared, procedural_count, root).items():
        licence = _LICENCES.get(source) or package_licence(source, root / "usr/share/doc")
        seen: set[str] = set()
        for origin, image in images():
            small = fit(image)
            if float(small.std()) < 2.0:  # one flat colour: no strokes to learn
                continue
            key = Path(origin).parents[2].name if "/contents/images/" in origin else origin
            if key in seen:
                continue
            seen.add(key)
            file = f"{split}/{source}-{len(seen):04d}-{_slug(origin)}.png"
            (out / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(small).save(out / file)
            entries.append(Entry(file, source, origin, licence, split))
        if progress:
            progress(source, len(seen))
    (out / "manifest.json").write_text(json.dumps([asdict(e) for e in entries], indent=1))
    return entries
