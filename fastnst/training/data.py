"""Training data: random square crops of the photos in a folder, as a LightningDataModule.

Unreadable files never stop a run: each is skipped with one warning and replaced by the next
readable photo. A missing or empty folder, or one with no readable image, is an error before
training starts. The order of samples and crops is a function of the seed and the step, so a
resumed run sees what an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fastnst.errors import FastnstError
from fastnst.files import files_under
from fastnst.images import IMAGE_SUFFIXES, ImageError, read_image, resize, resize_long_side

log = logging.getLogger(__name__)


class DataError(FastnstError, ValueError):
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
    `short_side`. Items are `(file index, crop seed)` pairs (see `SampleOrder`); an unreadable
    file is replaced by the next readable one, so batches keep their size."""

    def __init__(self, files: list[Path], crop_size: int, short_side: int | None = None) -> None:
        self.files = files
        self.crop_size = crop_size
        self.short_side = max(crop_size, short_side or crop_size)
        self.warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def crop(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """A random crop of file `index`, or None if it cannot be read (warned once per file)."""
        path = self.files[index]
        try:
            image = read_image(path, max_size=4 * self.short_side)
        except ImageError as e:
            if path not in self.warned:
                self.warned.add(path)
                log.warning("skipping unreadable training image %s", e)
            return None
        return random_crop(image, self.crop_size, generator, short_side=self.short_side)[0]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        """The crop of file `item[0]` (or of the next readable file) cut with random seed
        `item[1]`, and how many unreadable files were passed over."""
        index, seed = item
        for skipped in range(len(self.files)):
            crop = self.crop((index + skipped) % len(self.files),
                             torch.Generator().manual_seed(seed))
            if crop is not None:
                return crop, skipped
        raise DataError(f"none of the {len(self.files)} training images can be read any more")

    def first_readable(self) -> Path:
        """The first file that can be read; DataError (naming the folder's problem) if none."""
        for index, path in enumerate(self.files):
            if self.crop(index) is not None:
                return path
        raise DataError(f"none of the {len(self.files)} training images can be read"
                        f" (the log names each one)")


def _mix(seed: int, n: int) -> int:
    """A 63-bit generator seed for stream `n` of run seed `seed` (distinct pairs, distinct seeds
    for n < 2**31)."""
    return (seed * 2**31 + n) % 2**63


class SampleOrder(Sampler[tuple[int, int]]):
    """Which photo and which crop each training sample is, as a function of the seed alone.

    Sample n is file `perm_p[n % files]` of a fresh random permutation per pass p = n // files,
    cut with crop seed `_mix(seed, 2n + 1)`. Every iteration starts at sample `position()` (the
    samples the run has already trained on) and ends at the next multiple of `per_epoch`, so a
    resumed run is fed exactly the batches an uninterrupted one would be. Under DDP, rank r of
    `world` takes samples r, r + world, ...
    """

    def __init__(self, files: int, per_epoch: int, seed: int, position: Callable[[], int],
                 rank: int = 0, world: int = 1) -> None:
        self.files, self.per_epoch, self.seed = files, per_epoch, seed
        self.position, self.rank, self.world = position, rank, world

    def __len__(self) -> int:
        return self.per_epoch // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start = self.position()
        end = (start // self.per_epoch + 1) * self.per_epoch
        perm, perm_pass = torch.empty(0, dtype=torch.long), -1
        for n in range(start + self.rank, end, self.world):
            if n // self.files != perm_pass:
                perm_pass = n // self.files
                perm = torch.randperm(self.files,
                                      generator=torch.Generator().manual_seed(
                                          _mix(self.seed, 2 * perm_pass)))
            yield int(perm[n % self.files]), _mix(self.seed, 2 * n + 1)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Loader workers ignore Ctrl-C, which the trainer handles (a worker that died on the
    terminal's SIGINT would fail the step the trainer is finishing), and end on SIGTERM, as
    PyTorch expects when it stops them (not the trainer's inherited handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def collate_readable(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, int]:
    """Stack the crops; also return how many unreadable files were passed over for them."""
    return torch.stack([crop for crop, _ in items]), sum(skipped for _, skipped in items)


class PhotoDataModule(pl.LightningDataModule):
    """Batches of random crops from every image under `root`.

    crop_size: side of the square crops (pixels); short_side: photos are scaled to this short
    side before cropping (null: crop_size, i.e. crops span the photo's short side); batch_size:
    crops per step; workers: loader processes (0 loads in the training process). val: a folder
    or a list of validation photos (null: the first training photos); val_count: how many at
    most; val_size: their long side (pixels); seed: the order of photos and crops (see
    `SampleOrder`).
    """

    def __init__(self, root: str | os.PathLike[str] | None, crop_size: int = 256,
                 short_side: int | None = None, batch_size: int = 4, workers: int = 2,
                 val: str | os.PathLike[str] | Sequence[str] | None = None, val_count: int = 4,
                 val_size: int = 256, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
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
            train_set = PhotoFolder(find_images(self.root), self.crop_size, self.short_side)
            train_set.first_readable()
            self.train_set = train_set
            log.info("training on %d images under %s", len(train_set), self.root)

    def train_dataloader(self) -> DataLoader:
        """Batches `(crops (B, 3, S, S), unreadable files passed over)`. Inside a Trainer, they
        start at its `global_step` and one epoch lasts until `max_steps` (if set); the Trainer
        must not replace the sampler (`use_distributed_sampler=False`)."""
        self.setup()
        assert self.train_set is not None
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        per_step = self.batch_size * world * (trainer.accumulate_grad_batches if trainer else 1)
        if trainer and trainer.max_steps > 0:
            per_epoch = trainer.max_steps * per_step
        else:  # one pass over the photos
            per_epoch = max(1, len(self.train_set) // per_step) * per_step
        order = SampleOrder(len(self.train_set), per_epoch, self.seed,
                            lambda: trainer.global_step * per_step if trainer else 0, rank, world)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=order,
                          drop_last=True, num_workers=self.workers,
                          persistent_workers=self.workers > 0, collate_fn=collate_readable,
                          worker_init_fn=_ignore_ctrl_c)

    def val_images(self) -> list[tuple[Path, torch.Tensor]]:
        """The fixed validation photos: `(path, (1, 3, H, W))` pairs, long side `val_size`.

        Taken from `val` (a folder, or a list of files) when set, else the first training photos;
        unreadable ones are skipped with a warning.
        """
        if self.val is None:  # the training photos, listed once when setup() listed them
            files = self.train_set.files if self.train_set is not None else find_images(self.root)
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
