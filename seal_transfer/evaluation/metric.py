"""`FrameMAP`: the official AVA frame-mAP as a torchmetrics `Metric` for Lightning validation, correct under DDP.

Each rank appends its per-box predictions; `compute()` gathers them (`dist_reduce_fx="cat"`), drops the copies
that DistributedSampler padding creates (same sample index + same box ordinal = same prediction), keeps the
official top-k (box, class) pairs per keyframe, and runs `frame_map`'s core against the GT given at construction.
Keyframes travel between ranks as integer ids into a registry of (video_id, timestamp) that every rank builds
identically (by default the GT's keyframes in first-seen order).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.evaluation.frame_map import (
    PROTOCOLS,
    FrameMapResult,
    descending_score_bits,
    evaluate_keyed,
    keyframe_codes,
)


def top_k_flat(keys: np.ndarray, scores: np.ndarray, top_k: int) -> np.ndarray:
    """Flat indices (ascending) of the top_k entries per key of a (boxes, classes) score matrix.

    Ties rank by flat index (box-major), the same rule `frame_map` applies to the expanded table.
    """
    n_boxes, n_classes = scores.shape
    flat_scores = scores.reshape(-1)
    if top_k <= 0 or flat_scores.size == 0:
        return np.arange(flat_scores.size)
    flat_keys = np.repeat(keys.astype(np.uint64), n_classes)
    # Unique sort key = (keyframe, score desc, position within the keyframe): a plain quicksort is then stable.
    box_order = np.argsort(keys, kind="stable")
    sorted_box_keys = keys[box_order]
    run_start = np.flatnonzero(np.concatenate(([True], sorted_box_keys[1:] != sorted_box_keys[:-1])))
    ordinal = np.empty(n_boxes, dtype=np.int64)
    ordinal[box_order] = np.arange(n_boxes) - np.repeat(run_start, np.diff(np.append(run_start, n_boxes)))
    local = (np.repeat(ordinal, n_classes) * n_classes + np.tile(np.arange(n_classes), n_boxes)).astype(np.uint64)
    key_bits = max(1, int(keys.max()).bit_length()) if keys.size else 1
    local_bits = max(1, int(local.max()).bit_length())
    if key_bits + 32 + local_bits <= 64:
        composite = ((flat_keys << np.uint64(32 + local_bits))
                     | (descending_score_bits(flat_scores) << np.uint64(local_bits)) | local)
        order = np.argsort(composite)
    else:
        composite = (flat_keys << np.uint64(32)) | descending_score_bits(flat_scores)
        order = np.argsort(composite, kind="stable")
    sorted_keys = flat_keys[order]
    change = np.empty(order.size, dtype=bool)
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    within = np.arange(order.size) - np.repeat(starts, np.diff(np.append(starts, order.size)))
    return np.sort(order[within < top_k])


class FrameMAP(Metric):
    """AVA frame-mAP@IoU (official numbers) accumulated over validation batches.

    update(keyframe_ids (N,), boxes (N, 4) normalised x1y1x2y2, scores (N, C) in `class_ids` order,
    sample_index (N,) optional dataset index of the sample each box came from, for padding de-duplication).
    compute() returns the mAP as a 0-d tensor; `per_class_ap` and `result` keep the details.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    keyframe_ids: list[torch.Tensor] | torch.Tensor
    boxes: list[torch.Tensor] | torch.Tensor
    scores: list[torch.Tensor] | torch.Tensor
    sample_index: list[torch.Tensor] | torch.Tensor
    box_ordinal: list[torch.Tensor] | torch.Tensor

    def __init__(
        self,
        gt: AvaTable,
        class_ids: Sequence[int],
        *,
        keyframes: Sequence[tuple[str, float]] | None = None,
        exclusions: Iterable[tuple[str, float]] = (),
        negative_keyframes: Iterable[tuple[str, float]] = (),
        iou_threshold: float = 0.5,
        protocol: str = "2020",
        top_k: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.class_ids = [int(c) for c in class_ids]
        self.iou_threshold = float(iou_threshold)
        self.protocol = protocol
        self.top_k = int(top_k)
        negatives = list(negative_keyframes)
        if keyframes is None:
            seen = dict.fromkeys(gt.keyframe_keys())
            seen.update(dict.fromkeys((str(v), float(t)) for v, t in negatives))
            keyframes = list(seen)
        self.keyframes: list[tuple[str, float]] = [(str(v), float(t)) for v, t in keyframes]
        self._keyframe_index = {key: i for i, key in enumerate(self.keyframes)}
        excluded = list(exclusions)

        def columns(keys: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
            if not keys:
                return np.zeros(0, "U1"), np.zeros(0, np.float64)
            return np.asarray([k[0] for k in keys], dtype=str), np.asarray([k[1] for k in keys], dtype=np.float64)

        reg_v, reg_t = columns(self.keyframes)
        ex_v, ex_t = columns([(str(v), float(t)) for v, t in excluded])
        neg_v, neg_t = columns([(str(v), float(t)) for v, t in negatives])
        (self._registry_codes, gt_codes, self._excluded_codes, self._negative_codes), self._num_keys = keyframe_codes(
            [reg_v, gt.video_ids, ex_v, neg_v], [reg_t, gt.timestamps, ex_t, neg_t]
        )
        self._gt_codes = gt_codes
        self._gt_classes = gt.action_ids.copy()
        self._gt_boxes = gt.boxes.copy()
        self.result: FrameMapResult | None = None
        self.predictions: GatheredPredictions | None = None
        self.add_state("keyframe_ids", default=[], dist_reduce_fx="cat")
        self.add_state("boxes", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("sample_index", default=[], dist_reduce_fx="cat")
        self.add_state("box_ordinal", default=[], dist_reduce_fx="cat")

    # ---------------------------------------------------------------- registry

    def keyframe_id(self, video_id: str, timestamp: float) -> int:
        """Registry id of a keyframe (raises KeyError naming it when the registry does not hold it)."""
        key = (str(video_id), float(timestamp))
        if key not in self._keyframe_index:
            raise KeyError(f"keyframe {key[0]},{key[1]:g} is not in the FrameMAP registry; pass it in `keyframes`")
        return self._keyframe_index[key]

    def keyframe_id_tensor(self, keys: Iterable[tuple[str, float]]) -> torch.Tensor:
        return torch.tensor([self.keyframe_id(v, t) for v, t in keys], dtype=torch.long, device=self.device)

    # ---------------------------------------------------------------- accumulate

    def update(
        self,
        keyframe_ids: torch.Tensor,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        sample_index: torch.Tensor | None = None,
    ) -> None:
        keyframe_ids = torch.as_tensor(keyframe_ids, device=self.device).reshape(-1).long()
        boxes = torch.as_tensor(boxes, device=self.device).float()
        scores = torch.as_tensor(scores, device=self.device).float()
        n = keyframe_ids.numel()
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), got {tuple(boxes.shape)}")
        if scores.shape != (n, len(self.class_ids)):
            raise ValueError(f"scores must have shape ({n}, {len(self.class_ids)}) (one column per class id), "
                             f"got {tuple(scores.shape)}")
        if n and (int(keyframe_ids.min()) < 0 or int(keyframe_ids.max()) >= len(self.keyframes)):
            raise ValueError(f"keyframe ids must lie in [0, {len(self.keyframes)}) (the registry)")
        if sample_index is None:
            samples = torch.full((n,), -1, dtype=torch.long, device=self.device)
        else:
            samples = torch.as_tensor(sample_index, device=self.device).reshape(-1).long()
            if samples.numel() != n:
                raise ValueError(f"sample_index must have {n} entries, got {samples.numel()}")
        self.keyframe_ids.append(keyframe_ids)
        self.boxes.append(boxes.detach())
        self.scores.append(scores.detach())
        self.sample_index.append(samples)
        self.box_ordinal.append(self._ordinal_within_sample(samples))

    @staticmethod
    def _ordinal_within_sample(samples: torch.Tensor) -> torch.Tensor:
        """0, 1, 2... over the boxes of each sample in this batch: (sample, ordinal) names one prediction."""
        n = samples.numel()
        if n == 0:
            return samples.clone()
        order = torch.argsort(samples, stable=True)
        sorted_samples = samples[order]
        new_run = torch.ones(n, dtype=torch.bool, device=samples.device)
        new_run[1:] = sorted_samples[1:] != sorted_samples[:-1]
        run_id = torch.cumsum(new_run.long(), 0) - 1
        run_start = torch.nonzero(new_run).reshape(-1)
        position = torch.arange(n, device=samples.device) - run_start[run_id]
        ordinal = torch.empty_like(position)
        ordinal[order] = position
        return ordinal

    # ---------------------------------------------------------------- result

    @staticmethod
    def _numpy(state: list[torch.Tensor] | torch.Tensor, empty_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if isinstance(state, list) and not state:
            return np.zeros(empty_shape, dtype=dtype)
        return dim_zero_cat(state).detach().cpu().numpy()

    def compute(self) -> torch.Tensor:
        n_classes = len(self.class_ids)
        ids = self._numpy(self.keyframe_ids, (0,), np.int64).astype(np.int64)
        boxes = self._numpy(self.boxes, (0, 4), np.float32).astype(np.float32).reshape(-1, 4)
        scores = self._numpy(self.scores, (0, n_classes), np.float32).astype(np.float32).reshape(-1, n_classes)
        samples = self._numpy(self.sample_index, (0,), np.int64).astype(np.int64)
        ordinals = self._numpy(self.box_ordinal, (0,), np.int64).astype(np.int64)
        keep = deduplicate(samples, ordinals)
        ids, boxes, scores = ids[keep], boxes[keep], scores[keep]
        self.predictions = GatheredPredictions(samples[keep], ids, boxes, scores)
        det_keys = self._registry_codes[ids] if ids.size else np.zeros(0, np.int64)
        flat = top_k_flat(det_keys, scores, self.top_k)
        box_of, class_of = np.divmod(flat, n_classes)
        result = evaluate_keyed(
            gt_key=self._gt_codes, gt_classes=self._gt_classes, gt_boxes=self._gt_boxes,
            det_key=det_keys[box_of], det_classes=np.asarray(self.class_ids, dtype=np.int64)[class_of],
            det_boxes=boxes[box_of], det_scores=scores.reshape(-1)[flat],
            class_ids=self.class_ids, num_keys=self._num_keys, excluded_keys=self._excluded_codes,
            negative_keys=self._negative_codes, iou_threshold=self.iou_threshold, protocol=self.protocol,
            top_k=self.top_k,
        )
        self.result = result
        value = result.mAP if not math.isnan(result.mAP) else float("nan")
        return torch.tensor(value, dtype=torch.float64)

    @property
    def per_class_ap(self) -> dict[int, float]:
        """Per-class AP of the last compute() (NaN: no GT for the class)."""
        return dict(self.result.per_class) if self.result is not None else {}


@dataclass(frozen=True)
class GatheredPredictions:
    """The per-box predictions the last `compute()` scored, from every rank, each once: what a caller writes out
    (e.g. a detection CSV). Rows tagged with a sample index come first, ordered by (sample, box ordinal)."""

    sample_index: np.ndarray  # (N,) int64, -1 where none was given
    keyframe_ids: np.ndarray  # (N,) registry ids
    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N, C) float32, columns in `class_ids` order


def deduplicate(samples: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """Row indices to keep: the first row of each (sample, ordinal), ordered by (sample, ordinal), then every row
    without a sample index (-1) in input order.

    The order of the tagged rows does not depend on how the samples were sharded over ranks, so the scores and a
    file written from them are the same for any world size.
    """
    rows = np.arange(samples.size)
    tagged = samples >= 0
    if not tagged.any():
        return rows
    span = int(ordinals[tagged].max()) + 1
    _, first = np.unique(samples[tagged] * span + ordinals[tagged], return_index=True)
    return np.concatenate([rows[tagged][first], rows[~tagged]])
