"""Tubelet features: a window slides along each person tube; the backbone's RoI-pooled feature of the tube's box in
each window becomes one row of a (T, C) array per tube (paper §4, "Slowfast-T" / "TSP-T").

Time grid (our decision; the paper gives window, stride and rates only): a tube spanning [s, e) seconds gets
T = ceil((e - s) / step) features with step = stride / fps; feature i describes [s + i·step, s + (i+1)·step) and
comes from the `window` frames (at `fps`) centred on that interval's centre, frames outside the tube repeating the
tube's first/last frame. So a TAD step u maps to the time s + u·step, with u = 0 the tube start, and two streams
whose step is equal (paper: 4/30 s = 2/15 s) share one grid exactly. The window's frames are sampled evenly down to
the model's fast-pathway length (R50 8x8: 32 → 32, every frame).

Boxes: the tube's annotated boxes are thinned to `box_fps` (for each grid instant k/box_fps, the nearest annotated
row) and each window uses the thinned box nearest its centre (paper: 4 fps boxes for SlowFast, 2 fps for TSP).

Files: `{dir}/{vid}__{tid}.npy` (T, C) features and `{dir}/{vid}__{tid}.json` (grid: start, step, num, …); the
JSON is written first and the .npy last, both atomically, so an existing .npy means the tube is done.
`{dir}/stream.json` records the settings; a folder made with other settings is refused, not silently mixed.

Decoding: a tube is cut into chunks of `chunk_windows` windows; each chunk decodes its frame range once (windows
overlap heavily, so a frame is decoded once per chunk, chunks overlap by window − stride frames) and runs the
backbone on `batch_windows` windows per forward. Chunks are DataLoader items, so `num_workers` decode in parallel.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seal_transfer.data.clip import pack_pathways
from seal_transfer.data.config import AugmentConfig
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.data.video import open_video_source
from seal_transfer.data.workers import decode_worker_init
from seal_transfer.errors import UserError
from seal_transfer.tad.config import StreamConfig
from seal_transfer.utils.fileio import atomic_path, write_json

FEATURE_FORMAT = "seal_transfer-tubelet-features-1"


# ------------------------------------------------------------------------------------------------ planning


@dataclass
class TubeRef:
    """One tube to extract: where its video is and what the annotation says about it."""

    video_id: str
    tube_id: str
    video_path: Path
    native_fps: float
    frames: tuple[int, int]  # inclusive
    boxes: np.ndarray  # (n, 5) frame, x1, y1, x2, y2 normalised

    @property
    def stem(self) -> str:
        return feature_stem(self.video_id, self.tube_id)


def feature_stem(video_id: str, tube_id: str) -> str:
    """File stem of a tube's features; ids are percent-quoted so no id can leave the folder."""
    return f"{urllib.parse.quote(video_id, safe='')}__{urllib.parse.quote(str(tube_id), safe='')}"


@dataclass
class TimeGrid:
    """Feature i covers [start + i·step, start + (i+1)·step) seconds."""

    start: float
    step: float
    num: int

    @property
    def centres(self) -> np.ndarray:
        return self.start + (np.arange(self.num) + 0.5) * self.step

    @property
    def end(self) -> float:
        return self.start + self.num * self.step

    def to_steps(self, seconds: np.ndarray) -> np.ndarray:
        return (np.asarray(seconds, dtype=np.float64) - self.start) / self.step

    def to_seconds(self, steps: np.ndarray) -> np.ndarray:
        return self.start + np.asarray(steps, dtype=np.float64) * self.step


def tube_grid(frames: tuple[int, int], native_fps: float, stream: StreamConfig) -> TimeGrid:
    start, end = frames[0] / native_fps, (frames[1] + 1) / native_fps
    num = max(1, math.ceil((end - start) / stream.step - 1e-9))
    return TimeGrid(start, stream.step, num)


def window_frames(grid: TimeGrid, frames: tuple[int, int], native_fps: float, stream: StreamConfig,
                  model_frames: int) -> np.ndarray:
    """(T, model_frames) source frame indices: `window` frames at `fps` centred on each feature's interval, sampled
    evenly down to `model_frames`, mapped to the native frame shown at that instant, clamped to the tube."""
    offsets = (np.arange(stream.window) - (stream.window - 1) / 2) / stream.fps  # seconds from the centre
    pick = np.floor((np.arange(model_frames) + 0.5) * stream.window / model_frames).astype(np.int64)
    times = grid.centres[:, None] + offsets[pick][None, :]
    index = np.floor(times * native_fps + 1e-6).astype(np.int64)
    return np.clip(index, frames[0], frames[1])


def _nearest(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of the nearest element of a sorted array for each query (ties: the earlier one)."""
    right = np.clip(np.searchsorted(sorted_values, queries), 0, len(sorted_values) - 1)
    left = np.clip(right - 1, 0, len(sorted_values) - 1)
    take_left = np.abs(queries - sorted_values[left]) <= np.abs(sorted_values[right] - queries)
    return np.where(take_left, left, right)


def window_boxes(boxes: np.ndarray, grid: TimeGrid, native_fps: float, box_fps: Optional[float]) -> np.ndarray:
    """(T, 4) normalised box per feature: annotated boxes thinned to `box_fps`, then the nearest to each centre."""
    if len(boxes) == 0:
        raise UserError("tube has no boxes")
    times = (boxes[:, 0].astype(np.float64) + 0.5) / native_fps
    order = np.argsort(times, kind="stable")
    times, rows = times[order], boxes[order, 1:5]
    if box_fps is not None:
        ticks = np.arange(math.floor(times[0] * box_fps), math.ceil(times[-1] * box_fps) + 1) / box_fps
        kept = np.unique(_nearest(times, ticks))
        times, rows = times[kept], rows[kept]
    return rows[_nearest(times, grid.centres)].astype(np.float32)


# ------------------------------------------------------------------------------------------------ model


class TubeletEncoder(nn.Module):
    """A SlowFast + RoI detector used as a feature extractor: the RoI head's pooled feature before its projection
    (2304 channels for R50), captured by a pre-hook on `detection_head.proj`, so the head's own code does the
    pooling exactly as in training."""

    def __init__(self, detector: nn.Module, alpha: int) -> None:
        super().__init__()
        self.detector = detector.eval()
        self.alpha = alpha
        self._captured: Optional[torch.Tensor] = None
        self.detector.detection_head.proj.register_forward_pre_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._captured = inputs[0]

    @property
    def out_channels(self) -> int:
        return int(self.detector.detection_head.proj.in_features)

    @torch.no_grad()
    def forward(self, fast: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """fast (B, 3, T, H, W), boxes (B, 4) pixels → (B, C)."""
        rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], 1)
        self.detector(pack_pathways(fast, self.alpha), rois)
        features, self._captured = self._captured, None
        return features.reshape(len(boxes), -1)


# ------------------------------------------------------------------------------------------------ data


@dataclass
class ChunkPlan:
    tube: int  # index into the tube list
    first: int  # first window of the chunk
    last_chunk: bool


class TubeChunks(Dataset):
    """Item = one chunk of one tube: its windows' frames decoded once and transformed, plus pixel boxes."""

    def __init__(self, tubes: Sequence[TubeRef], stream: StreamConfig, model_frames: int, augment: AugmentConfig,
                 chunk_windows: int) -> None:
        self.tubes = list(tubes)
        self.stream = stream
        self.model_frames = model_frames
        self.chunk_windows = max(1, chunk_windows)
        short_side = stream.short_side or augment.eval_short_side
        self.short_side = short_side
        eval_only = AugmentConfig(min_short_side=short_side, max_short_side=short_side, crop_size=short_side,
                                  eval_short_side=short_side, mean=list(augment.mean), std=list(augment.std),
                                  antialias=augment.antialias)
        self.transform = ClipTransform(eval_only, train=False)  # short-side resize + normalise, boxes → pixels
        self.grids = [tube_grid(t.frames, t.native_fps, stream) for t in self.tubes]
        self.chunks: list[ChunkPlan] = []
        for i, grid in enumerate(self.grids):
            starts = list(range(0, grid.num, self.chunk_windows))
            self.chunks += [ChunkPlan(i, s, s == starts[-1]) for s in starts]
        self._sources: dict[Path, Any] = {}

    def __len__(self) -> int:
        return len(self.chunks)

    def _source(self, path: Path) -> Any:
        if path not in self._sources:
            for old in self._sources.values():  # chunks arrive tube by tube: one open video at a time
                old.close()
            self._sources = {path: open_video_source(path)}
        return self._sources[path]

    def __getitem__(self, i: int) -> dict[str, Any]:
        plan = self.chunks[i]
        tube, grid = self.tubes[plan.tube], self.grids[plan.tube]
        stop = min(plan.first + self.chunk_windows, grid.num)
        item: dict[str, Any] = {"tube": plan.tube, "first": plan.first, "last_chunk": plan.last_chunk}
        try:
            index = window_frames(grid, tube.frames, tube.native_fps, self.stream, self.model_frames)[plan.first:stop]
            boxes = window_boxes(tube.boxes, grid, tube.native_fps, self.stream.box_fps)[plan.first:stop]
            unique, position = np.unique(index, return_inverse=True)
            frames = self._source(tube.video_path).read(unique, short_side=self.short_side)
            clip, pixel_boxes = self.transform(frames, boxes)  # (3, N, h, w): each frame transformed once
        except (UserError, ValueError) as exc:
            item["error"] = f"{tube.video_id}/{tube.tube_id}: {exc}"
            return item
        item["clip"] = clip
        item["position"] = torch.from_numpy(position.reshape(index.shape))
        item["boxes"] = pixel_boxes
        return item


def _collate_one(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0]


# ------------------------------------------------------------------------------------------------ extraction


@dataclass
class ExtractionReport:
    written: int
    skipped: int
    failed: list[str]
    channels: int

    def to_json(self) -> dict[str, Any]:
        return {"written": self.written, "skipped": self.skipped, "failed": len(self.failed),
                "failed_examples": self.failed[:10], "channels": self.channels}


def read_stream_info(directory: Path) -> Optional[dict[str, Any]]:
    path = directory / "stream.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _check_stream_folder(directory: Path, signature: dict[str, Any], overwrite: bool) -> None:
    existing = read_stream_info(directory)
    if existing is None or overwrite:
        write_json(directory / "stream.json", signature)
        return
    if existing != signature:
        changed = sorted(k for k in set(existing) | set(signature) if existing.get(k) != signature.get(k))
        raise UserError(f"{directory}: features there were made with other settings ({', '.join(changed)} differ); "
                        "pass tubes.overwrite_features=true to recompute them or use another run_dir")


def extract_stream(
    tubes: Sequence[TubeRef],
    encoder: TubeletEncoder,
    stream: StreamConfig,
    out_dir: Path,
    augment: AugmentConfig,
    *,
    signature: dict[str, Any],
    model_frames: int,
    batch_windows: int = 16,
    chunk_windows: int = 128,
    num_workers: int = 0,
    dtype: str = "float16",
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
    desc: str = "features",
) -> ExtractionReport:
    """Write `{out_dir}/{stem}.npy` + `.json` for every tube not done yet; failed tubes are reported, not fatal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_stream_folder(out_dir, {**signature, "format": FEATURE_FORMAT, "stream": asdict(stream), "dtype": dtype},
                         overwrite)
    todo = [t for t in tubes if overwrite or not (out_dir / f"{t.stem}.npy").is_file()]
    skipped = len(tubes) - len(todo)
    dataset = TubeChunks(todo, stream, model_frames, augment, chunk_windows)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers, collate_fn=_collate_one,
                        worker_init_fn=decode_worker_init,
                        persistent_workers=False)
    encoder = encoder.to(device)
    pending: dict[int, list[np.ndarray]] = {}
    failed: dict[int, str] = {}
    written = 0
    bar = _progress(len(dataset), desc, progress)
    for item in loader:
        tube_index = int(item["tube"])
        if "error" in item or tube_index in failed:
            failed.setdefault(tube_index, item.get("error", "earlier chunk failed"))
            pending.pop(tube_index, None)
        else:
            pending.setdefault(tube_index, []).append(_encode_chunk(encoder, item, batch_windows, device))
            if item["last_chunk"]:
                features = np.concatenate(pending.pop(tube_index))
                _write_tube(out_dir, todo[tube_index], dataset.grids[tube_index], features, stream, dtype)
                written += 1
        bar.update(1)
        bar.set_postfix(tubes=f"{written}/{len(todo)}", failed=len(failed))
    bar.close()
    return ExtractionReport(written, skipped, list(failed.values()), encoder.out_channels)


def _encode_chunk(encoder: TubeletEncoder, item: dict[str, Any], batch_windows: int, device: str) -> np.ndarray:
    clip = item["clip"].to(device)  # (3, N, h, w)
    position, boxes = item["position"].to(device), item["boxes"].to(device)
    out = []
    for lo in range(0, len(position), batch_windows):
        pos = position[lo:lo + batch_windows]  # (B, frames)
        fast = clip[:, pos].permute(1, 0, 2, 3, 4)  # (B, 3, frames, h, w)
        out.append(encoder(fast, boxes[lo:lo + batch_windows]).float().cpu())
    return torch.cat(out).numpy()


def _write_tube(out_dir: Path, tube: TubeRef, grid: TimeGrid, features: np.ndarray, stream: StreamConfig,
                dtype: str) -> None:
    meta = {"video_id": tube.video_id, "tube_id": tube.tube_id, "start": grid.start, "step": grid.step,
            "num": grid.num, "window_seconds": stream.window / stream.fps, "channels": int(features.shape[1])}
    write_json(out_dir / f"{tube.stem}.json", meta)
    with atomic_path(out_dir / f"{tube.stem}.npy") as tmp:
        np.save(tmp, features.astype(dtype))


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------ reading


@dataclass
class TubeFeatures:
    features: np.ndarray  # (T, C) float32
    grid: TimeGrid


def load_tube_features(directory: Path, video_id: str, tube_id: str) -> Optional[TubeFeatures]:
    """One tube's features and grid, or None if not extracted (failed or skipped)."""
    stem = feature_stem(video_id, tube_id)
    npy, meta_path = directory / f"{stem}.npy", directory / f"{stem}.json"
    if not npy.is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    return TubeFeatures(np.load(npy).astype(np.float32), TimeGrid(meta["start"], meta["step"], meta["num"]))


def resample_to_grid(features: np.ndarray, source: TimeGrid, target: TimeGrid) -> np.ndarray:
    """Linear interpolation of (T, C) features from one grid's centres to another's (edges held)."""
    if source.num == target.num and math.isclose(source.start, target.start) and math.isclose(source.step,
                                                                                                target.step):
        return features
    position = np.clip((target.centres - source.start) / source.step - 0.5, 0, source.num - 1)
    left = np.floor(position).astype(np.int64)
    right = np.minimum(left + 1, source.num - 1)
    weight = (position - left)[:, None].astype(features.dtype)
    return features[left] * (1 - weight) + features[right] * weight


def concat_streams(parts: Sequence[TubeFeatures]) -> TubeFeatures:
    """Two-stream input: every stream resampled onto the first stream's grid, channels concatenated."""
    grid = parts[0].grid
    return TubeFeatures(np.concatenate([resample_to_grid(p.features, p.grid, grid) for p in parts], axis=1), grid)

