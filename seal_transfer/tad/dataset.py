"""Temporal detection data: each tube's ground truth per task (AA: atomic actions, CA: complex activities) and the
per-tube dataset of stored features the detector trains and predicts on."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from seal_transfer.data.formats.activitynet import TadSegments
from seal_transfer.data.formats.seal import SealTubes
from seal_transfer.tad.features import (
    TubeFeatures,
    TubeRef,
    concat_streams,
    feature_stem,
    load_tube_features,
)

# --------------------------------------------------------------------------------------------- annotations


@dataclass
class TubeLabels:
    """One tube's ground truth for one task: segments in seconds and class indices."""

    video_id: str
    tube_id: str
    segments: np.ndarray  # (G, 2) seconds
    labels: np.ndarray  # (G,) class index


@dataclass
class TaskSplit:
    class_names: list[str]
    tubes: list[TubeLabels]
    multilabel: bool

    def gt_segments(self) -> tuple[TadSegments, np.ndarray]:
        """All GT as TadSegments (video ids = video) + tube ids, for per-tube mAP."""
        vids, tids, starts, ends, labels = [], [], [], [], []
        for t in self.tubes:
            vids += [t.video_id] * len(t.labels)
            tids += [t.tube_id] * len(t.labels)
            starts += t.segments[:, 0].tolist()
            ends += t.segments[:, 1].tolist()
            labels += [self.class_names[i] for i in t.labels]
        return TadSegments.from_columns(vids, starts, ends, labels), np.asarray(tids, dtype=str)

    def class_counts(self) -> dict[int, int]:
        counts = Counter(int(c) for t in self.tubes for c in t.labels)
        return dict(counts)


def task_split(tubes: SealTubes, task: str) -> TaskSplit:
    """Atomic actions (ids of the label map, multi-label) or complex activities (names, one per instant)."""
    if task == "aa":
        ids = list(tubes.atomic_classes.ids)
        column = {cid: i for i, cid in enumerate(ids)}
        names = [tubes.atomic_classes.names[c] for c in ids]
    else:
        names = list(tubes.activity_classes)
        column = {n: i for i, n in enumerate(names)}
    out = []
    for vid, video in tubes.videos.items():
        for tid, tube in video.tubes.items():
            segs = tube.atomic_actions if task == "aa" else tube.activities
            arr = np.asarray([[s.start, s.end] for s in segs], dtype=np.float64).reshape(-1, 2)
            out.append(TubeLabels(vid, tid, arr, np.asarray([column[s.label] for s in segs], dtype=np.int64)))
    return TaskSplit(names, out, multilabel=task == "aa")


def tube_refs(tubes: SealTubes, video_paths: dict[str, Path]) -> list[TubeRef]:
    return [TubeRef(vid, tid, video_paths[vid], float(video.fps), tube.frames, tube.boxes)
            for vid, video in tubes.videos.items() for tid, tube in video.tubes.items()]


# --------------------------------------------------------------------------------------------- TAD data


def load_streams(feature_root: Path, streams: tuple[str, ...], video_id: str, tube_id: str) -> Optional[TubeFeatures]:
    parts = [load_tube_features(feature_root / s, video_id, tube_id) for s in streams]
    if any(p is None for p in parts):
        return None
    return concat_streams(parts)  # type: ignore[arg-type]


class TubeDataset(Dataset):
    """Item = one tube's feature sequence (C, T) and its GT in feature steps; training crops long tubes."""

    def __init__(self, split: TaskSplit, feature_root: Path, streams: tuple[str, ...], *, train: bool,
                 max_length: int, seed: int = 0) -> None:
        self.split = split
        self.feature_root = feature_root
        self.streams = streams
        self.train = train
        self.max_length = max_length
        self.seed = seed
        self.epoch = 0
        self.items: list[int] = []
        self.lengths: list[int] = []  # feature steps per item (from the grid file), for length-sorted batching
        for i, tube in enumerate(split.tubes):
            if all((feature_root / s / f"{_stem(tube)}.npy").is_file() for s in streams):
                self.items.append(i)
                grid_file = feature_root / streams[0] / f"{_stem(tube)}.json"
                self.lengths.append(int(json.loads(grid_file.read_text())["num"]))
        self.missing = len(split.tubes) - len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Crop offsets are drawn from (seed, epoch, tube): a resumed run crops as an uninterrupted one."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = self.items[k]
        tube = self.split.tubes[i]
        feats = load_streams(self.feature_root, self.streams, tube.video_id, tube.tube_id)
        assert feats is not None
        x, grid = feats.features, feats.grid
        steps = grid.to_steps(tube.segments).reshape(-1, 2) if len(tube.segments) else np.zeros((0, 2))
        labels = tube.labels
        offset = 0
        if self.train and len(x) > self.max_length:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            offset = int(rng.integers(0, len(x) - self.max_length + 1))
            x = x[offset:offset + self.max_length]
            steps = steps - offset
        steps = np.clip(steps, 0, len(x))
        keep = steps[:, 1] - steps[:, 0] > 1e-3
        if self.train and len(tube.segments):
            # A crop that cuts away most of a segment must not teach a boundary there.
            full = (tube.segments[:, 1] - tube.segments[:, 0]) / grid.step
            keep &= (steps[:, 1] - steps[:, 0]) >= 0.5 * np.maximum(full, 1e-6)
        return {"x": torch.from_numpy(np.ascontiguousarray(x.T)), "segments": torch.from_numpy(steps[keep]).float(),
                "labels": torch.from_numpy(labels[keep]), "index": i, "offset": offset, "grid": grid}


def _stem(tube: TubeLabels) -> str:
    return feature_stem(tube.video_id, tube.tube_id)


def collate_tubes(items: list[dict[str, Any]], multiple: int) -> dict[str, Any]:
    """Pad to the longest tube (rounded up to `multiple`, the pyramid's total stride) with a validity mask."""
    length = max(it["x"].shape[1] for it in items)
    length = max(multiple, int(math.ceil(length / multiple)) * multiple)
    channels = items[0]["x"].shape[0]
    x = torch.zeros(len(items), channels, length)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for b, it in enumerate(items):
        n = it["x"].shape[1]
        x[b, :, :n] = it["x"]
        mask[b, :n] = True
    targets = [{"segments": it["segments"], "labels": it["labels"]} for it in items]
    return {"x": x, "mask": mask, "targets": targets, "index": [it["index"] for it in items],
            "grids": [it["grid"] for it in items]}


class TubeCollate:
    def __init__(self, multiple: int) -> None:
        self.multiple = multiple

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_tubes(items, self.multiple)
