"""LightningDataModules: keyframe datasets of a domain wrapped in DataLoaders with the project's collate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from seal_transfer.data.clip import ClipSpec
from seal_transfer.data.datasets import (
    KeyframeDataset,
    KeyframeIndex,
    build_keyframe_index,
    check_keyframes,
    check_videos,
    collate_keyframes,
)
from seal_transfer.data.domains import DomainSplit
from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.data.workers import decode_worker_init
from seal_transfer.errors import UserError


@dataclass
class KeyframeSplit:
    """A dataset plus what evaluation needs to map its box ids back to (video, time, box)."""

    dataset: KeyframeDataset
    split: DomainSplit
    broken_videos: list[str]  # one line per unusable video: its path and the problem
    broken_video_ids: list[str] = field(default_factory=list)
    skipped_keyframes: list[str] = field(default_factory=list)  # one line per keyframe dropped from a usable video

    @property
    def index(self) -> KeyframeIndex:
        return self.dataset.index

    def box_keyframes(self) -> np.ndarray:
        """Keyframe position of every box id (box ids index `index.boxes`)."""
        return np.repeat(np.arange(len(self.index)), np.diff(self.index.box_start))

    def boxes_table(self, box_ids: np.ndarray) -> AvaTable:
        """(video, time, box) rows for `box_ids`, in that order."""
        kf = self.box_keyframes()[box_ids]
        return AvaTable.from_columns(
            [self.index.video_ids[k] for k in kf],
            self.index.timestamps[kf],
            self.index.boxes[box_ids],
            person_ids=self.index.person_ids[box_ids],
            scores=self.index.box_scores[box_ids],
        )


def make_keyframe_split(
    cfg: Any,
    split: DomainSplit,
    *,
    clip: ClipSpec,
    train: bool,
    labelled: bool = True,
    views: int = 1,
    what: str = "",
) -> KeyframeSplit:
    """Build the dataset of one loaded split: keyframes of unreadable videos, and keyframes whose clip cannot be
    decoded as asked (outside the video, a gap, a truncated file), are skipped and counted; more than
    `data.max_broken_fraction` of the videos or of the keyframes lost stops the stage. `clip` is what the model
    takes per keyframe (`seal_transfer.models.config.clip_spec(cfg.model)`)."""
    what = what or "dataset"
    spec = clip
    window = spec.span
    limit = float(cfg.data.max_broken_fraction)
    good, broken = check_videos(split.video_paths, limit, what, min_frames=window)
    index = build_keyframe_index(
        split.table,
        split.labelmap if labelled else None,
        keep=lambda vid, ts: (vid, ts) not in split.exclusions,
        ignored=split.ignored if labelled else None,
    )
    checked = check_keyframes(
        index,
        good,
        split.timings,
        spec,
        promised_frames=split.promised_frames,
        promised_by=split.promised_by,
        check_range=split.check_keyframe_range,
        annotations=split.table.source if Path(split.table.source or ".").is_file() else "",
    )
    broken_ids = [vid for vid in split.video_paths if vid not in good] + list(checked.broken)
    broken = broken + list(checked.broken.values())
    total_videos = len(split.video_paths)
    if broken:
        print(f"[{what}] skipping {len(broken)} of {total_videos} unreadable videos, first: {broken[0]}")
    if checked.skipped:
        print(f"[{what}] skipping {len(checked.skipped)} of {len(index)} keyframes that cannot be decoded as asked, "
              f"first: {checked.skipped[0]}")
    lost = int((~checked.keep).sum())
    if total_videos and len(broken) / total_videos > limit:
        raise UserError(
            f"{what}: {len(broken)} of {total_videos} videos are unreadable (limit "
            f"data.max_broken_fraction={limit}); first: {broken[0]}"
        )
    if len(index) and lost / len(index) > limit:
        first = broken[0] if broken else checked.skipped[0]
        raise UserError(
            f"{what}: {lost} of {len(index)} keyframes cannot be used (limit data.max_broken_fraction={limit}); "
            f"first: {first}"
        )
    index = index.select(checked.keep)
    if len(index) == 0:
        raise UserError(f"{what}: no keyframes left to use (all rows filtered or videos unreadable)")
    dataset = KeyframeDataset(
        index,
        good,
        split.timings,
        spec,
        ClipTransform(cfg.data.augment, train=train),
        seed=int(cfg.seed),
        views=views,
        video_frames=checked.video_frames,
    )
    if cfg.data.preload:
        _preload(dataset, float(cfg.data.preload_max_gb), what or "dataset")
    return KeyframeSplit(dataset, split, broken, broken_ids, checked.skipped)


def _preload(dataset: KeyframeDataset, max_gb: float, what: str) -> None:
    import time

    started = time.time()
    held = dataset.preload(int(max_gb * 1e9), progress=False)
    if held is None:
        print(f"[{what}] data.preload: frames would exceed data.preload_max_gb={max_gb}; decoding on the fly instead")
    else:
        print(f"[{what}] preloaded the frames of {len(dataset)} keyframes: {held / 1e6:.0f} MB in "
              f"{time.time() - started:.1f} s")


class EpochShuffleSampler(RandomSampler):
    """Shuffle order as a pure function of (seed, epoch): a run resumed from a checkpoint visits keyframes in the
    same order as an uninterrupted one (a plain RandomSampler draws from the global RNG, which a restart resets).
    Under DDP Lightning replaces it with a DistributedSampler, which is seeded per epoch too."""

    def __init__(self, data_source: Dataset, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class KeyframeDataModule(L.LightningDataModule):
    """Train/val DataLoaders with an epoch-seeded shuffle (resumable). Under DDP Lightning swaps in a
    DistributedSampler for each. `collate_fn` defaults to keyframes; clip classification passes its own."""

    def __init__(self, train: Optional[Dataset], val: Optional[Dataset], batch_size: int, num_workers: int,
                 collate_fn: Any = collate_keyframes) -> None:
        super().__init__()
        self.train_set = train
        self.val_set = val
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.collate_fn = collate_fn

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, int(getattr(dataset, "seed", 0))) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            worker_init_fn=decode_worker_init,
            persistent_workers=False,
            pin_memory=False,
            generator=torch.Generator(),  # worker base seeds must not consume the global RNG (see EpochSeed)
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        loader = self._loader(self.train_set, shuffle=True)
        # Lightning creates (and prefetches from) the first iterator before its epoch hooks run; on a resumed run
        # that first epoch is not epoch 0, so sampler and augmentation seeds must know the epoch already here.
        trainer = getattr(self, "trainer", None)
        epoch = int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0
        loader.sampler.set_epoch(epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        return loader

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return self._loader(self.val_set, shuffle=False)
