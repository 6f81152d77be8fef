"""Training data: folder scanning, random crops, corrupt files skipped, clear folder errors."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import smooth_image
from hostile import make_corpus

from fastnst.data import DataError, PhotoDataModule, PhotoFolder, find_images, random_crop
from fastnst.images import write_image


def _folder(tmp_path, good: int = 6, corrupt: int = 2):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(good):
        write_image(smooth_image(40 + 4 * i, 64, seed=i), root / ("sub" if i % 2 else ".") /
                    f"p{i}.{'jpg' if i % 3 else 'png'}")
    for i in range(corrupt):
        (root / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"")
    return root


def test_find_images_is_recursive_sorted_and_skips_non_images(tmp_path):
    root = _folder(tmp_path)
    files = find_images(root)
    assert len(files) == 8 and files == sorted(files)
    assert {f.name for f in files if f.parent.name == "sub"} == {"p1.jpg", "p3.png", "p5.jpg"}


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: training folder not found"):
        find_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        PhotoDataModule(tmp_path / "empty").setup()


@pytest.mark.parametrize(("h", "w"), [(40, 64), (64, 40), (10, 12), (32, 32)])
def test_random_crop_gives_a_square_of_the_asked_size(h, w):
    crop = random_crop(smooth_image(h, w), 32)
    assert crop.shape == (1, 3, 32, 32)


def test_random_crops_vary_and_are_seeded():
    image = smooth_image(48, 96)
    a = random_crop(image, 32, torch.Generator().manual_seed(1))
    b = random_crop(image, 32, torch.Generator().manual_seed(1))
    c = random_crop(image, 32, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_corrupt_file_gives_none_and_one_warning(tmp_path, caplog):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    dataset = PhotoFolder([bad], 16)
    with caplog.at_level(logging.WARNING):
        assert dataset[0] is None and dataset[0] is None
    warnings = [r for r in caplog.records if "bad.jpg" in r.getMessage()]
    assert len(warnings) == 1


def test_loader_trains_on_the_readable_rest(tmp_path):
    data = PhotoDataModule(_folder(tmp_path), crop_size=24, batch_size=4, workers=0)
    good = skipped = 0
    for batch, n_skipped in data.train_dataloader():
        assert batch.shape[1:] == (3, 24, 24)
        assert float(batch.min()) >= 0 and float(batch.max()) <= 1
        good += batch.shape[0]
        skipped += n_skipped
    assert (good, skipped) == (6, 2)  # 8 files, 2 batches of 4, corrupt ones dropped


def test_short_side_crops_a_part_of_the_photo_at_that_scale():
    # A horizontal ramp: a crop of the photo scaled to short side 64 spans half its width, so
    # its left-right range of values is about half the ramp's.
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 32, 64).clone()
    whole = random_crop(ramp, 16, torch.Generator().manual_seed(0))
    part = random_crop(ramp, 16, torch.Generator().manual_seed(0), short_side=64)
    assert part.shape == whole.shape == (1, 3, 16, 16)
    assert _row_span(part) < 0.6 * _row_span(whole)


def _row_span(crop: torch.Tensor) -> float:
    return float(crop[0, 0, 8].max() - crop[0, 0, 8].min())


def test_validation_photos_are_the_first_readable_ones_at_their_size(tmp_path, caplog):
    root = _folder(tmp_path, good=6, corrupt=2)
    data = PhotoDataModule(root, val_count=3, val_size=48)
    with caplog.at_level(logging.WARNING):
        photos = data.val_images()
    assert [p.name for p, _ in photos] == ["p0.png", "p2.jpg", "p4.jpg"]  # broken*.jpg skipped
    assert all(max(image.shape[-2:]) == 48 for _, image in photos)
    assert sum("broken" in r.message for r in caplog.records) == 2


def test_no_training_folder_configured_is_a_clear_error():
    with pytest.raises(DataError, match=r"set data\.root=PHOTOS or FASTNST_TRAIN_DIR"):
        PhotoDataModule(None).setup()


def test_validation_photos_can_be_a_list_of_files(tmp_path):
    root = _folder(tmp_path, good=6, corrupt=1)
    chosen = [root / "sub" / "p3.png", root / "broken0.jpg", root / "p0.png"]
    photos = PhotoDataModule(root, val=[str(p) for p in chosen], val_size=32).val_images()
    assert [p for p, _ in photos] == [chosen[0], chosen[2]]  # in the given order, broken skipped


def test_hostile_corpus_trains_on_every_valid_image_and_skips_the_rest(tmp_path, caplog):
    cases = {c.path: c for c in make_corpus(tmp_path / "corpus")}
    files = find_images(tmp_path / "corpus")
    # Every file is listed, also those that cannot be opened; a folder named .jpg is not.
    assert set(files) == {p for p in cases if not p.is_dir()}
    dataset = PhotoFolder(files, 16, short_side=24)
    with caplog.at_level(logging.WARNING):
        for i, path in enumerate(files):
            crop = dataset[i]
            if cases[path].valid:
                assert crop is not None and crop.shape == (3, 16, 16), cases[path].name
            else:
                assert crop is None, cases[path].name
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for path, case in cases.items():
        assert (str(path) in warned) == (not case.valid and not path.is_dir()), case.name
