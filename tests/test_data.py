"""Training data: folder scanning, random crops, corrupt files skipped, clear folder errors."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import smooth_image
from hostile import make_corpus

from fastnst.images import write_image
from fastnst.training.data import (
    DataError,
    PhotoDataModule,
    PhotoFolder,
    SampleOrder,
    find_images,
    random_crop,
)


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
        assert dataset.crop(0) is None and dataset.crop(0) is None
    warnings = [r for r in caplog.records if "bad.jpg" in r.getMessage()]
    assert len(warnings) == 1


def test_loader_replaces_unreadable_photos_with_readable_ones(tmp_path):
    data = PhotoDataModule(_folder(tmp_path), crop_size=24, batch_size=4, workers=0)
    batches = list(data.train_dataloader())
    assert len(batches) == 2  # 8 files, 2 full batches of 4
    for batch, _ in batches:
        assert batch.shape == (4, 3, 24, 24)
        assert float(batch.min()) >= 0 and float(batch.max()) <= 1
    # broken0.jpg and broken1.jpg sort next to each other: drawing broken0 passes over both,
    # drawing broken1 over one.
    assert sum(skipped for _, skipped in batches) == 3


def test_a_folder_with_no_readable_image_fails_before_training(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    with pytest.raises(DataError, match="none of the 2 training images can be read"):
        PhotoDataModule(tmp_path).setup()


def test_sample_order_resumes_mid_run_and_shards_by_rank():
    def order(position: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
        return list(SampleOrder(5, 20, seed=3, position=lambda: position, rank=rank, world=world))

    whole = order(0)
    assert len(whole) == 20 and len({seed for _, seed in whole}) == 20
    for start in range(0, 20, 5):  # each pass over the 5 files is a permutation of them
        assert sorted(i for i, _ in whole[start:start + 5]) == [0, 1, 2, 3, 4]
    assert whole[:5] != whole[5:10]  # a fresh order per pass
    assert order(8) == whole[8:]  # resumed at sample 8: exactly the rest
    assert order(4, rank=1, world=2) == whole[5::2]  # rank 1 of 2 takes every second sample
    following = order(20)  # the next epoch goes on: new passes, new crops, not a replay
    assert len(following) == 20 and not {s for _, s in following} & {s for _, s in whole}
    for start in range(0, 20, 5):
        assert sorted(i for i, _ in following[start:start + 5]) == [0, 1, 2, 3, 4]
    assert order(20)[0] != whole[0] and list(SampleOrder(5, 20, 4, lambda: 0)) != whole


def test_loader_output_does_not_depend_on_worker_processes(tmp_path):
    root = _folder(tmp_path, good=5, corrupt=1)
    serial, parallel = (list(PhotoDataModule(root, crop_size=16, batch_size=2, workers=w,
                                             seed=7).train_dataloader()) for w in (0, 2))
    assert len(serial) == 3
    for (a, skipped_a), (b, skipped_b) in zip(serial, parallel, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert skipped_a == skipped_b


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
            crop = dataset.crop(i)
            if cases[path].valid:
                assert crop is not None and crop.shape == (3, 16, 16), cases[path].name
            else:
                assert crop is None, cases[path].name
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for path, case in cases.items():
        assert (str(path) in warned) == (not case.valid and not path.is_dir()), case.name
