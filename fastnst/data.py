"""Training data: random square crops of the photos in a folder, as a LightningDataModule.

Unreadable files never stop a run: each is skipped with one warning, and batches simply come out
smaller. A missing or empty folder is an error before training starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from fastnst.files import files_under
from fastnst.images import IMAGE_SUFFIXES, ImageError, read_image, resize, resize_long_side

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A training folder that cannot be used; the message names it."""


def find_images(root: str | os.PathLike[str] | None, kind: str = "training",
                hint: str = "set data.root or FASTNST_TRAIN_DIR") -> list[Path]:
    """All image files under `root` (recursive, by suffix, hidden files skipped), sorted.

    `kind` and `hint` word the error for a missing folder."""
    if root is None:
        raise DataError("no training folder: set data.root=PHOTOS or FASTNST_TRAIN_DIR")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: {kind} folder not found ({hint})")
    files = files_under(root, IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def random_crop(image: torch.Tensor, size: int, generator: torch.Generator | None = None,
                short_side: int | None = None) -> torch.Tensor:
    """Scale `(1, 3, H, W)` so its short side is `short_side` (default and minimum: `size`),
    then take a random `size` square, flipped left-right half of the time."""
    h, w = image.shape[-2:]
    scale = max(size, short_side or size) / min(h, w)
    image = resize(image, (max(size, round(h * scale)), max(size, round(w * scale))))
    h, w = image.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    crop = image[..., top:top + size, left:left + size]
    if torch.rand(1, generator=generator) < 0.5:
        crop = crop.flip(-1)
    return crop


class PhotoFolder(Dataset):
    """Square crops `(3, size, size)` of `files`, taken after scaling the short side to
    `short_side`; an unreadable file gives None (and a warning)."""

    def __init__(self, files: list[Path], crop_size: int, short_side: int | None = None) -> None:
        self.files = files
        self.crop_size = crop_size
        self.short_side = max(crop_size, short_side or crop_size)
        self.warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        path = self.files[index]
        try:
            image = read_image(path, max_size=4 * self.short_side)
        except ImageError as e:
            if path not in self.warned:
                self.warned.add(path)
                log.warning("skipping unreadable training image %s", e)
            return None
        return random_crop(image, self.crop_size, short_side=self.short_side)[0]


def collate_readable(items: list[torch.Tensor | None]) -> tuple[torch.Tensor, int]:
    """Stack the readable crops; also return how many items were skipped."""
    good = [x for x in items if x is not None]
    batch = torch.stack(good) if good else torch.empty(0)
    return batch, len(items) - len(good)


class PhotoDataModule(pl.LightningDataModule):
    """Batches of random crops from every image under `root`.

    crop_size: side of the square crops (pixels); short_side: photos are scaled to this short
    side before cropping (null: crop_size, i.e. crops span the photo's short side); batch_size:
    crops per step; workers: loader processes (0 loads in the training process). val: a folder
    or a list of validation photos (null: the first training photos); val_count: how many at
    most; val_size: their long side (pixels).
    """

    def __init__(self, root: str | os.PathLike[str] | None, crop_size: int = 256,
                 short_side: int | None = None, batch_size: int = 4, workers: int = 2,
                 val: str | os.PathLike[str] | Sequence[str] | None = None, val_count: int = 4,
                 val_size: int = 256) -> None:
        super().__init__()
        self.root = None if root is None else Path(root).expanduser()
        self.crop_size = crop_size
        self.short_side = short_side
        self.batch_size = batch_size
        self.workers = workers
        self.val = val
        self.val_count = val_count
        self.val_size = val_size
        self.train_set: PhotoFolder | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = PhotoFolder(find_images(self.root), self.crop_size, self.short_side)
            log.info("training on %d images under %s", len(self.train_set), self.root)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          drop_last=True, num_workers=self.workers,
                          persistent_workers=self.workers > 0, collate_fn=collate_readable)

    def val_images(self) -> list[tuple[Path, torch.Tensor]]:
        """The fixed validation photos: `(path, (1, 3, H, W))` pairs, long side `val_size`.

        Taken from `val` (a folder, or a list of files) when set, else the first training photos;
        unreadable ones are skipped with a warning.
        """
        if self.val is None:
            files = find_images(self.root)
        elif isinstance(self.val, (str, os.PathLike)):
            files = find_images(self.val, "validation", "set data.val, or null for training photos")
        else:  # a list of photo files
            files = [Path(p).expanduser() for p in self.val]
        photos: list[tuple[Path, torch.Tensor]] = []
        for path in files:
            if len(photos) == self.val_count:
                break
            try:
                photos.append((path, resize_long_side(read_image(path, max_size=self.val_size),
                                                      self.val_size)))
            except ImageError as e:
                log.warning("skipping unreadable validation image %s", e)
        return photos
