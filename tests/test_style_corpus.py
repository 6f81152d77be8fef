"""The style corpus (issue 47): procedural paintings, the readers of the packages' formats, and
the assembly with its held-out split by source."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastnst.training import procedural
from fastnst.training.style_corpus import (
    HELDOUT,
    TRAIN,
    assemble,
    gcompris_paintings,
    qt_resources,
    read_gimp_pattern,
    sources,
)


def test_procedural_paintings_are_one_per_seed_and_differ_by_family_and_palette():
    first = procedural.painting(3, family="strokes")
    assert first.dtype == np.uint8 and first.ndim == 3 and max(first.shape[:2]) == 256
    np.testing.assert_array_equal(first, procedural.painting(3, family="strokes"))
    made = {f: procedural.painting(11, family=f) for f in procedural.FAMILIES}
    for family, image in made.items():
        assert image.std() > 5, family  # something painted, not a flat ground
    # Another seed gives another palette: the mean colours differ.
    means = [procedural.painting(s, family="dots").reshape(-1, 3).mean(0) for s in range(6)]
    assert np.std(means, axis=0).mean() > 10
    with pytest.raises(ValueError, match="family must be one of"):
        procedural.painting(0, family="collage")


def test_a_gpl_palette_is_read_and_drawn_from(tmp_path):
    gpl = tmp_path / "reds.gpl"
    gpl.write_text("GIMP Palette\nName: reds\nColumns: 2\n#\n250 10 10 Red\n200 0 30\n"
                   "180 20 20\n255 40 40\n")
    palette = procedural.read_gpl(gpl)
    assert palette == [(250, 10, 10), (200, 0, 30), (180, 20, 20), (255, 40, 40)]
    reds = [procedural.sampled_palette(np.random.default_rng(s), [palette]) for s in range(30)]
    assert any(set(p) <= set(palette) for p in reds)  # a third of the time or so


def _pattern(width: int, height: int, depth: int, name: bytes = b"grain\0") -> bytes:
    header = struct.pack(">IIIII", 24 + len(name), 1, width, height, depth) + b"GPAT" + name
    return header + bytes(range(256)) * (width * height * depth // 256 + 1)


def test_gimp_patterns_are_read_as_rgb():
    image = read_gimp_pattern(_pattern(16, 8, 3)[: 30 + 16 * 8 * 3])
    assert image.shape == (8, 16, 3) and image[0, 0].tolist() == [0, 1, 2]
    assert read_gimp_pattern(_pattern(4, 4, 1)).shape == (4, 4, 3)  # grey
    with pytest.raises(ValueError, match="not a GIMP pattern"):
        read_gimp_pattern(b"\x89PNG" + bytes(40))


def _rcc(files: dict[str, bytes]) -> bytes:
    """A Qt resource bundle (format 1) of `files` in one folder, every file zlib-packed."""
    names, data, tree = b"", b"", b""
    name_at = {}
    for name in ["root", "board", *files]:
        name_at[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    tree += struct.pack(">IHII", 0, 2, 1, 1)  # the root: one child, entry 1
    tree += struct.pack(">IHII", name_at["board"], 2, len(files), 2)  # a folder
    for name, content in files.items():
        packed = struct.pack(">I", len(content)) + zlib.compress(content)
        tree += struct.pack(">IHHHI", name_at[name], 1, 0, 0, len(data))
        data += struct.pack(">I", len(packed)) + packed
    header = 20
    return (b"qres" + struct.pack(">IIII", 1, header, header + len(tree),
                                  header + len(tree) + len(data)) + tree + data + names)


def _webp(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (*colour, 255)).save(out, "WEBP", lossless=True)
    return out.getvalue()


def test_a_qt_bundle_is_read_and_gcompris_puzzles_are_put_together():
    board = (b'levels : [ {"pixmapfile" : "image/bg.svg", "width": 40, "height": 20},'
             b' {"pixmapfile" : "image/Mine_a1.webp", "x" : "0.25", "y" : "0.5"},'
             b' {"pixmapfile" : "image/Mine_a2.webp", "x" : "0.75", "y" : "0.5"} ]')
    bundle = _rcc({"board1_0.qml": board, "Mine_a1.webp": _webp((200, 0, 0), (20, 20)),
                   "Mine_a2.webp": _webp((0, 0, 200), (20, 20))})
    files = dict(qt_resources(bundle))
    assert set(files) == {"/board/board1_0.qml", "/board/Mine_a1.webp", "/board/Mine_a2.webp"}
    assert files["/board/board1_0.qml"] == board
    (name, image), = list(gcompris_paintings(bundle))
    assert name == "Mine" and image.shape == (20, 40, 3)
    assert image[10, 5, 0] > 150 and image[10, 35, 2] > 150  # red on the left, blue right
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        list(qt_resources(b"PK\3\4" + bytes(30)))


def test_the_corpus_is_assembled_with_each_source_in_one_split(tmp_path):
    root = tmp_path / "root"
    share = root / "usr" / "share"
    (share / "gimp" / "2.0" / "patterns" / "Stone").mkdir(parents=True)
    (share / "gimp" / "2.0" / "patterns" / "Stone" / "grain.pat").write_bytes(_pattern(32, 32, 3))
    (share / "doc" / "gimp-data").mkdir(parents=True)
    (share / "doc" / "gimp-data" / "copyright").write_text("Files: *\nLicense: GPL-3+\n")
    backgrounds = share / "mypaint" / "backgrounds"
    backgrounds.mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(backgrounds / "white.png")  # flat: left out
    Image.fromarray(procedural.painting(1)).save(backgrounds / "canvas.png")
    shared = tmp_path / "shared"
    (shared / "data" / "styles").mkdir(parents=True)
    for name in ("starry_night", "candy"):
        Image.fromarray(procedural.painting(len(name))).save(shared / "data" / "styles" /
                                                             f"{name}.jpg")
    out = tmp_path / "corpus"
    entries = assemble(out, shared, procedural_count=3, root=root)
    by_source = {e.source: e for e in entries}
    assert {e.source for e in entries if e.split == TRAIN} == {
        "procedural", "gimp-data", "mypaint-data", "shared-shipped"}
    assert {e.source for e in entries if e.split == HELDOUT} == {"shared-heldout"}
    assert "GPL-3+" in by_source["gimp-data"].licence
    assert sum(e.source == "mypaint-data" for e in entries) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest) == len(entries) == 3 + 1 + 1 + 1 + 1
    for entry in manifest:
        with Image.open(out / entry["file"]) as image:
            assert max(image.size) == 256 and entry["file"].startswith(entry["split"] + "/")
    # No source is in both splits, whatever is installed.
    splits = {name: split for name, (split, _) in sources(shared).items()}
    assert splits["gcompris-qt-data"] == splits["shared-heldout"] == HELDOUT
    assert Path(by_source["shared-heldout"].file).name.endswith("candy.png")
