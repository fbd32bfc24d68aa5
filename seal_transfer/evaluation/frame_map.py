"""AVA frame-mAP@IoU with the official ActivityNet evaluator's numbers, vectorised.

The official code (`Evaluation/get_ava_performance.py` + the TF object-detection `ObjectDetectionEvaluation`)
spends ~4.5 minutes at AVA-val scale in per-image Python loops. Every rule it applies is reproduced here on whole
columns at once; docs/evaluation.md lists the rules and where the two official versions differ:

* keyframe key = (video_id, timestamp rounded to 1 µs), as the 2020 code's `"%s,%.6f"` key;
* detections whose class is not in the label map are dropped (and counted) before anything else;
* per keyframe only the `top_k` (50) highest-scoring (box, class) detections are kept (the official heap);
* detection boxes that are not strictly positive in width and height (empty or inverted) are then dropped
  (`_remove_invalid_boxes`): neither true nor false positives;
* GT boxes without area count as ground truth and are never matched: the intersection is clamped at 0, so their
  IoU with any detection is 0 (the official code raises instead for an inverted GT box on an image and class
  with a detection; we warn and score it as never matched);
* scored keyframes: 2020 = every keyframe named in the GT file (any class, or a `video,timestamp` row),
  detections elsewhere ignored; 2019 = every keyframe, detections on keyframes without GT are false positives;
  excluded keyframes are dropped from GT and detections in both;
* per (keyframe, class), in descending score order, a detection targets the GT box of its class with the highest
  IoU (first one on ties, `np.argmax`); it is a true positive iff that IoU >= threshold and the target is not yet
  taken. That target does not depend on the matching state, so "TP" == "best-ranked qualifying detection per
  target", a `np.minimum.at` over targets instead of a loop;
* per class, VOC AP (area under the monotone precision envelope at each recall step), computed from the ranks of
  the true positives alone; NaN for classes without GT (left out of the mean), 0 for classes with GT but no
  detections; mAP = nanmean.

Ties in score (which the official code leaves to heap layout and an unstable `np.argsort`) are broken by input
order: the earlier row ranks higher, in the top-k cut, the matching order and the precision/recall ordering.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seal_transfer.data.formats.ava import AvaTable

PROTOCOLS = ("2020", "2019")
_MICROSECONDS = 1_000_000


@dataclass
class FrameMapResult:
    """Frame-mAP and the counts that explain it (what was scored, what was dropped and why)."""

    mAP: float
    per_class: dict[int, float]  # label-map order; NaN where the class has no GT
    num_gt_per_class: dict[int, int]
    num_detections_per_class: dict[int, int]  # detections that entered the class's precision/recall curve
    num_true_positives_per_class: dict[int, int]
    num_gt_boxes: int  # GT (box, action) rows evaluated (label-map classes, scored, non-excluded keyframes)
    num_keyframes: int  # keyframes scored: 2020 = keyframes named in GT; 2019 = keyframes with label-map GT
    num_detection_keyframes: int  # keyframes whose detections were evaluated
    num_detections: int  # detection rows given
    num_detections_evaluated: int
    num_ignored_class: int  # detection rows whose class is not in the label map
    num_dropped_excluded: int  # detection rows on excluded keyframes
    num_dropped_unscored: int  # 2020: detection rows on keyframes absent from the GT
    num_dropped_top_k: int  # rows beyond the top_k of their keyframe
    num_dropped_invalid_box: int  # rows whose box has zero or negative width/height
    num_excluded_keyframes: int  # excluded keyframes that appear in the GT or the detections
    protocol: str = "2020"
    iou_threshold: float = 0.5
    top_k: int = 50
    warnings: list[str] = field(default_factory=list)
    num_degenerate_gt_boxes: int = 0  # of num_gt_boxes: zero or negative width/height (never matched)
    # With keep_ranking=True: per class, its evaluated detections in ranking order, as (scores, true-positive
    # flags) -- the points of its precision/recall curve (`evaluation.pr`). Not part of to_json().
    ranking: dict[int, tuple[np.ndarray, np.ndarray]] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict: NaN APs become null (JSON has no NaN)."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        out: dict[str, Any] = {
            "mAP": clean(self.mAP),
            "per_class": {str(k): clean(v) for k, v in self.per_class.items()},
            "num_gt_per_class": {str(k): v for k, v in self.num_gt_per_class.items()},
            "num_detections_per_class": {str(k): v for k, v in self.num_detections_per_class.items()},
            "num_true_positives_per_class": {str(k): v for k, v in self.num_true_positives_per_class.items()},
        }
        for name in (
            "num_gt_boxes", "num_keyframes", "num_detection_keyframes", "num_detections", "num_detections_evaluated",
            "num_ignored_class", "num_dropped_excluded", "num_dropped_unscored", "num_dropped_top_k",
            "num_dropped_invalid_box", "num_excluded_keyframes", "num_degenerate_gt_boxes", "protocol",
            "iou_threshold", "top_k", "warnings",
        ):
            out[name] = getattr(self, name)
        return out


# ------------------------------------------------------------------------------------------------ helpers


def exact_float64(values: np.ndarray) -> np.ndarray:
    """Recover the float64 the official reader would parse from text, given our float32 copy.

    A value written with <= 6 decimals is the only 6-decimal number that rounds to its float32, so rounding
    the widened value to 6 decimals gives back exactly `float(text)`; otherwise the widened float32 is kept.
    IoU at exactly 0.5 (easy to hit with hand-written boxes) then compares the same way as the official code.
    """
    values = np.asarray(values)
    if values.dtype == np.float64:
        return values
    wide = values.astype(np.float64)
    # np.round(wide, 6), in place: multiply, round half to even, divide (the same three operations).
    rounded = np.multiply(wide, 1e6)
    np.rint(rounded, out=rounded)
    np.divide(rounded, 1e6, out=rounded)
    np.copyto(rounded, wide, where=rounded.astype(values.dtype) != values)
    return rounded


def factorize_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) for a string array; runs of equal values (how AVA files are laid out) are hashed once."""
    values = np.asarray(values)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), values[:0]
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    uniques, run_codes = np.unique(values[starts], return_inverse=True)
    lengths = np.diff(np.append(starts, n))
    return np.repeat(run_codes.astype(np.int64), lengths), uniques


def video_codes(
    videos: Sequence[np.ndarray | None], factorised: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None
) -> list[np.ndarray]:
    """One int code per distinct video id across several string arrays: the index in their sorted union.

    `factorised[i]`, where given, is a ready `(codes, vocab)` of `videos[i]` (`videos[i] == vocab[codes]`, vocab
    in any order, as the fast CSV reader provides it); `videos[i]` is then not read (it may be None), so those
    strings are never compared row by row.
    """
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for i, v in enumerate(videos):
        given = factorised[i] if factorised is not None else None
        if given is not None:
            parts.append((np.asarray(given[0]), np.asarray(given[1], dtype=str)))
        else:
            parts.append(factorize_strings(np.asarray(v, dtype=str)))
    names = sorted({name for _, vocab in parts for name in vocab.tolist()})  # code-point order, as np.unique
    if not names:
        return [np.zeros(len(codes), np.int64) for codes, _ in parts]
    union = np.asarray(names, dtype=str)
    return [np.searchsorted(union, vocab)[codes] if codes.size else np.zeros(0, np.int64) for codes, vocab in parts]


def keyframe_codes(
    videos: Sequence[np.ndarray | None],
    timestamps: Sequence[np.ndarray],
    factorised: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
) -> tuple[list[np.ndarray], int]:
    """Give every distinct (video, timestamp to the µs) across several column pairs one int id (0..n-1).

    `factorised`: optional ready factorisations of the video arrays (see `video_codes`; a factorised array may be
    None). Rows come in runs of one keyframe in AVA files, so the keys are computed once per run and repeated.
    """
    sizes = [len(t) for t in timestamps]
    if sum(sizes) == 0:
        return [np.zeros(0, np.int64) for _ in sizes], 0
    head_videos, head_ts, run_lengths = [], [], []
    for v, t in zip(video_codes(videos, factorised), timestamps):
        t = np.asarray(t, dtype=np.float64)
        change = np.ones(v.size, dtype=bool)
        if v.size > 1:
            np.not_equal(v[1:], v[:-1], out=change[1:])
            change[1:] |= t[1:] != t[:-1]
        starts = np.flatnonzero(change)
        head_videos.append(v[starts])
        head_ts.append(t[starts])
        run_lengths.append(np.diff(np.append(starts, v.size)))
    video_code = np.concatenate(head_videos).astype(np.int64, copy=False)
    micro = np.rint(np.concatenate(head_ts) * _MICROSECONDS).astype(np.int64)
    micro -= micro.min()
    step = int(np.gcd.reduce(micro)) or 1  # AVA: whole seconds, so the grid is coarse and the table small
    micro //= step
    n_videos, span = int(video_code.max()) + 1, int(micro.max()) + 1
    if n_videos * span <= 1 << 26:  # dense table: ids without a sort
        combined = video_code * span + micro
        present = np.zeros(n_videos * span, dtype=bool)
        present[combined] = True
        dense_id = np.cumsum(present) - 1
        codes, n_unique = dense_id[combined].astype(np.int64), int(dense_id[-1]) + 1
    else:
        if n_videos * span >= 1 << 62:  # absurd timestamp ranges: factorise the times first so the product fits
            _, micro = np.unique(micro, return_inverse=True)
            span = int(micro.max()) + 1
        uniques, codes = np.unique(video_code * span + micro, return_inverse=True)
        codes, n_unique = codes.astype(np.int64), int(uniques.size)
    out, start = [], 0
    for lengths in run_lengths:
        out.append(np.repeat(codes[start:start + lengths.size], lengths))
        start += lengths.size
    return out, n_unique


def descending_score_bits(scores: np.ndarray) -> np.ndarray:
    """uint64 whose ascending order is the float32 scores' descending order (a total order on finite values).

    -0.0 + 0.0 is +0.0, so the two zeros get one key and tie, as they compare in float arithmetic.
    """
    bits = np.add(scores, np.float32(0.0), dtype=np.float32).view(np.uint32)
    flip = np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    return (~(bits ^ flip)).astype(np.uint64)


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices that sort `scores` descending, ties by position (earlier first).

    float32 scores (what AvaTable holds) and their position pack into one unique uint64, so sorting those keys
    (not argsorting) gives the stable order, several times faster than a stable argsort; other dtypes take the
    stable argsort.
    """
    scores = np.asarray(scores)
    n = scores.size
    position_bits = max(1, int(n - 1).bit_length())
    if scores.dtype == np.float32 and position_bits <= 32:
        key = descending_score_bits(scores)
        key <<= np.uint64(position_bits)
        key |= np.arange(n, dtype=np.uint64)
        key.sort()  # keys are unique, so any sort gives this one order; sorting values beats argsort ~4x
        key &= np.uint64((1 << position_bits) - 1)
        return key.astype(np.intp)
    return np.argsort(-scores.astype(np.float64), kind="stable")


def descending_rank(scores: np.ndarray) -> np.ndarray:
    """Rank of each score in descending order, ties by position (earlier first): unique ints 0..n-1."""
    order = descending_order(scores)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    return rank


def voc_average_precision(tp: np.ndarray, num_gt: int | float) -> float:
    """VOC AP of detections already in ranking order: area under the monotone precision envelope.

    Same arithmetic as the official `compute_precision_recall` + `compute_average_precision` (and ActivityNet's
    `interpolated_prec_rec`): NaN without GT, 0 without detections.
    """
    if num_gt <= 0:
        return math.nan
    tp = np.asarray(tp, dtype=bool)
    if tp.size == 0:
        return 0.0
    tp_cum = np.cumsum(tp, dtype=np.int64)
    fp_cum = np.cumsum(~tp, dtype=np.int64)
    precision = tp_cum.astype(np.float64) / (tp_cum + fp_cum)
    recall = tp_cum.astype(np.float64) / num_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    previous = np.concatenate(([0.0], recall[:-1]))
    steps = recall != previous
    terms = (recall[steps] - previous[steps]) * envelope[steps]
    if recall[-1] != 1.0:  # the official closing step to recall 1 at precision 0 (adds 0; kept for summation order)
        terms = np.append(terms, (1.0 - recall[-1]) * 0.0)
    return float(np.sum(terms))


def voc_average_precision_at(hits: np.ndarray, num_detections: int, num_gt: int | float) -> float:
    """`voc_average_precision` from the ranks (0-based, ascending) of the true positives among `num_detections`.

    The same value bit for bit, with work proportional to the true positives: precision rises only at a true
    positive, so the monotone envelope at a true positive is the maximum over the later true positives, and the
    recall steps are exactly the true positives; the terms summed are the same array.
    """
    if num_gt <= 0:
        return math.nan
    if num_detections == 0:
        return 0.0
    hits = np.asarray(hits, dtype=np.int64)
    tp_cum = np.arange(1, hits.size + 1, dtype=np.int64)
    precision = tp_cum.astype(np.float64) / (hits + 1)  # tp_cum / (tp_cum + fp_cum) at each true positive
    recall = tp_cum.astype(np.float64) / num_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    previous = np.concatenate(([0.0], recall[:-1]))
    terms = (recall - previous) * envelope
    final_recall = recall[-1] if hits.size else 0.0
    if final_recall != 1.0:
        terms = np.append(terms, (1.0 - final_recall) * 0.0)
    return float(np.sum(terms))


def _group_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique values, start offsets and sizes of the runs in an already-sorted int array."""
    if sorted_keys.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    change = np.empty(sorted_keys.size, dtype=bool)
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    sizes = np.diff(np.append(starts, sorted_keys.size))
    return sorted_keys[starts], starts, sizes


def _pairwise_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of row i of `det` with row i of `gt`; boxes x1,y1,x2,y2 float64, the official op order (no +1)."""
    inter_h = np.maximum(0.0, np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1]))
    inter_w = np.maximum(0.0, np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0]))
    inter = inter_h * inter_w
    area_det = (det[:, 3] - det[:, 1]) * (det[:, 2] - det[:, 0])
    area_gt = (gt[:, 3] - gt[:, 1]) * (gt[:, 2] - gt[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_det + area_gt - inter)


def match_detections(
    det_group: np.ndarray,
    det_boxes: np.ndarray,
    gt_group: np.ndarray,
    gt_boxes: np.ndarray,
    iou_threshold: float,
    ranking: np.ndarray | None = None,
    *,
    rank: np.ndarray | None = None,
    box_rows: np.ndarray | None = None,
) -> np.ndarray:
    """True-positive flags of detections, in the order `rank` (detection i's rank: unique ints, smaller is better)
    or `ranking` (the detections listed best first); neither: input order.

    `det_group`/`gt_group` are int group ids (keyframe * n_classes + class). Each detection targets the GT of its
    group with the highest IoU (first on ties); the best-ranked qualifying detection per target is the true
    positive. The loop runs over GT slots (max GT boxes per group), never over boxes. Detection i's box is
    `det_boxes[i]`, or `det_boxes[box_rows[i]]` (so only detections that meet a GT box are gathered). Boxes may be
    float32 (AvaTable's dtype): `exact_float64` recovers them where IoU is computed.
    """
    tp = np.zeros(det_group.size, dtype=bool)
    if det_group.size == 0 or gt_group.size == 0:
        return tp
    gt_order = np.argsort(gt_group * gt_group.size + np.arange(gt_group.size))  # file order within a group
    gt_sorted_group = gt_group[gt_order]
    gt_sorted_boxes = gt_boxes[gt_order]
    group_ids, group_starts, group_sizes = _group_bounds(gt_sorted_group)
    if int(max(group_ids[-1], det_group.max())) < 1 << 26:  # dense table: one gather instead of a search
        table = np.full(int(max(group_ids[-1], det_group.max())) + 1, -1, dtype=np.int32)
        table[group_ids] = np.arange(group_ids.size, dtype=np.int32)
        slot = table[det_group]
        found = slot >= 0
        del table
    else:
        slot = np.searchsorted(group_ids, det_group)
        slot_ok = slot < group_ids.size
        found = np.zeros(det_group.size, dtype=bool)
        found[slot_ok] = group_ids[slot[slot_ok]] == det_group[slot_ok]
    candidates = np.flatnonzero(found)
    if candidates.size == 0:
        return tp
    cand_slot = slot[candidates]
    del slot, found
    counts = group_sizes[cand_slot]
    starts = group_starts[cand_slot]
    if int(counts.max()) < 1 << 15:  # detections with more GT first: slot j then touches a prefix
        by_count = np.argsort(-counts.astype(np.int16), kind="stable")  # radix sort
    else:
        by_count = np.argsort(-counts)
    candidates, counts, starts = candidates[by_count], counts[by_count], starts[by_count]
    active_per_slot = np.searchsorted(-counts, -np.arange(1, int(counts[0]) + 1), side="right")
    best_iou = np.full(candidates.size, -np.inf)
    best_gt = np.full(candidates.size, -1, dtype=np.int64)
    # Only detections that meet GT need their boxes, and the exact float64 of them.
    cand_boxes = exact_float64(det_boxes[candidates if box_rows is None else box_rows[candidates]])
    for j, n_active in enumerate(active_per_slot.tolist()):
        gt_index = starts[:n_active] + j
        iou = _pairwise_iou(cand_boxes[:n_active], gt_sorted_boxes[gt_index])
        better = iou > best_iou[:n_active]  # strict: the first maximum wins, as np.argmax
        best_iou[:n_active][better] = iou[better]
        best_gt[:n_active][better] = gt_index[better]
    qualifies = best_iou >= iou_threshold
    hits, targets = candidates[qualifies], best_gt[qualifies]
    if rank is not None:
        hit_rank = np.asarray(rank)[hits]
    elif ranking is not None:
        inverse = np.empty(det_group.size, dtype=np.int64)
        inverse[ranking] = np.arange(det_group.size)
        hit_rank = inverse[hits]
    else:
        hit_rank = hits
    best_rank = np.full(gt_group.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best_rank, targets, hit_rank)
    tp[hits[best_rank[targets] == hit_rank]] = True
    return tp


# ------------------------------------------------------------------------------------------------ main API


def frame_map(
    gt: AvaTable,
    detections: AvaTable,
    class_ids: Sequence[int],
    *,
    exclusions: Iterable[tuple[str, float]] = (),
    negative_keyframes: Iterable[tuple[str, float]] = (),
    iou_threshold: float = 0.5,
    protocol: str = "2020",
    top_k: int = 50,
    keep_ranking: bool = False,
) -> FrameMapResult:
    """Frame-mAP@`iou_threshold` of `detections` (one row per box and class, with score) against `gt`.

    `class_ids`: the label map (e.g. the 60 AVA evaluation classes). `negative_keyframes`: keyframes the GT names
    without any box (the 2020 format's `video,timestamp` rows); scored under protocol 2020. `keep_ranking`: also
    return each class's ranked true-positive flags (`FrameMapResult.ranking`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    excluded = list(exclusions)
    negatives = list(negative_keyframes)
    ex_videos = np.asarray([v for v, _ in excluded], dtype=str) if excluded else np.zeros(0, "U1")
    ex_ts = np.asarray([t for _, t in excluded], dtype=np.float64)
    neg_videos = np.asarray([v for v, _ in negatives], dtype=str) if negatives else np.zeros(0, "U1")
    neg_ts = np.asarray([t for _, t in negatives], dtype=np.float64)
    (gt_key, det_key, ex_key, neg_key), n_keys = keyframe_codes(
        [None if t.video_codes is not None else t.video_ids for t in (gt, detections)] + [ex_videos, neg_videos],
        [gt.timestamps, detections.timestamps, ex_ts, neg_ts],
        [gt.video_codes, detections.video_codes, None, None],
    )
    return evaluate_keyed(
        gt_key=gt_key, gt_classes=gt.action_ids, gt_boxes=gt.boxes,
        det_key=det_key, det_classes=detections.action_ids, det_boxes=detections.boxes, det_scores=detections.scores,
        class_ids=class_ids, num_keys=n_keys, excluded_keys=ex_key, negative_keys=neg_key,
        iou_threshold=iou_threshold, protocol=protocol, top_k=top_k, keep_ranking=keep_ranking,
    )


def evaluate_keyed(
    *,
    gt_key: np.ndarray,
    gt_classes: np.ndarray,
    gt_boxes: np.ndarray,
    det_key: np.ndarray,
    det_classes: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    class_ids: Sequence[int],
    num_keys: int,
    excluded_keys: np.ndarray | None = None,
    negative_keys: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    protocol: str = "2020",
    top_k: int = 50,
    keep_ranking: bool = False,
) -> FrameMapResult:
    """Frame-mAP on integer keyframe ids (0..num_keys-1): the core that `frame_map`, `FrameMAP` and the PR curves
    share."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    class_list = [int(c) for c in class_ids]
    if not class_list:
        raise ValueError("class_ids is empty: nothing to evaluate")
    if len(set(class_list)) != len(class_list):
        raise ValueError("class_ids has duplicates")
    n_classes = len(class_list)
    notes: list[str] = []
    gt_key = np.asarray(gt_key, dtype=np.int64)
    det_key = np.asarray(det_key, dtype=np.int64)
    n_det_rows = int(det_key.size)

    # Class ids → contiguous indices; -1 outside the label map (a lookup table when ids are small).
    max_id = max(class_list)
    if min(class_list) >= 0 and max_id < 1 << 20:
        lookup = np.full(max_id + 2, -1, dtype=np.int64)  # lookup[max_id + 1] == lookup[-1] == -1
        lookup[np.asarray(class_list)] = np.arange(n_classes)

        def class_index(ids: np.ndarray) -> np.ndarray:
            return lookup[np.clip(np.asarray(ids, dtype=np.int64), -1, max_id + 1)]
    else:
        sorted_ids = np.asarray(sorted(class_list), dtype=np.int64)
        id_to_index = {cid: i for i, cid in enumerate(class_list)}
        sorted_index = np.asarray([id_to_index[int(c)] for c in sorted_ids], dtype=np.int64)

        def class_index(ids: np.ndarray) -> np.ndarray:
            ids = np.asarray(ids, dtype=np.int64)
            pos = np.clip(np.searchsorted(sorted_ids, ids), 0, sorted_ids.size - 1)
            return np.where(sorted_ids[pos] == ids, sorted_index[pos], -1)

    gt_cls = class_index(gt_classes)
    det_cls = class_index(det_classes)

    excluded = np.zeros(max(num_keys, 1), dtype=bool)
    if excluded_keys is not None and len(excluded_keys):
        excluded[np.asarray(excluded_keys, dtype=np.int64)] = True
    in_gt_file = np.zeros(max(num_keys, 1), dtype=bool)
    in_gt_file[gt_key] = True
    if negative_keys is not None and len(negative_keys):
        in_gt_file[np.asarray(negative_keys, dtype=np.int64)] = True
    used_keys = np.zeros(max(num_keys, 1), dtype=bool)
    used_keys[gt_key] = True
    used_keys[det_key] = True
    num_excluded_keyframes = int((excluded & (used_keys | in_gt_file)).sum())

    # Ground truth: label-map classes on non-excluded keyframes.
    gt_keep = (gt_cls >= 0) & ~excluded[gt_key]
    gt_key_kept, gt_cls_kept = gt_key[gt_keep], gt_cls[gt_keep]
    gt_boxes_kept = exact_float64(np.asarray(gt_boxes)[gt_keep])
    # GT boxes without area (x2 <= x1 or y2 <= y1) count as ground truth; their IoU with any detection is 0
    # (the intersection is clamped at 0), so they are never matched.
    gt_inverted = (gt_boxes_kept[:, 2] < gt_boxes_kept[:, 0]) | (gt_boxes_kept[:, 3] < gt_boxes_kept[:, 1])
    num_degenerate_gt = int(((gt_boxes_kept[:, 2] <= gt_boxes_kept[:, 0])
                             | (gt_boxes_kept[:, 3] <= gt_boxes_kept[:, 1])).sum())
    has_gt_image = np.zeros(max(num_keys, 1), dtype=bool)
    has_gt_image[gt_key_kept] = True
    if protocol == "2020":
        scored = in_gt_file & ~excluded
    else:
        scored = has_gt_image
    num_keyframes = int(scored.sum())

    # Detections: class filter, exclusions, (2020) unscored keyframes, top-k per keyframe, invalid boxes.
    in_map = det_cls >= 0
    num_ignored_class = int((~in_map).sum())
    on_excluded = in_map & excluded[det_key]
    num_dropped_excluded = int(on_excluded.sum())
    keep = in_map & ~on_excluded
    if protocol == "2020":
        unscored = keep & ~scored[det_key]
        num_dropped_unscored = int(unscored.sum())
        keep &= ~unscored
    else:
        num_dropped_unscored = 0
    rows = np.flatnonzero(keep)
    del in_map, on_excluded, keep
    dk = det_key[rows]
    # Float32 order equals the order of the float64 values `exact_float64` recovers, so rank the stored dtype.
    by_score = descending_order(np.asarray(det_scores)[rows])
    dropped = np.zeros(rows.size, dtype=bool)
    num_dropped_top_k = 0
    if top_k and top_k > 0 and rows.size:
        per_key = np.bincount(dk, minlength=max(num_keys, 1))
        crowded = per_key[dk] > top_k  # only these keyframes need the cut
        if crowded.any():
            ranked = by_score[crowded[by_score]]  # crowded rows, best first
            by_key = ranked[np.argsort(dk[ranked], kind="stable")]  # per keyframe, best first
            _, starts, sizes = _group_bounds(dk[by_key])
            within = np.arange(by_key.size) - np.repeat(starts, sizes)
            dropped[by_key[within >= top_k]] = True
            num_dropped_top_k = int(dropped.sum())
            del ranked, by_key, within
    del dk
    det_boxes = np.asarray(det_boxes)  # validity in the stored dtype: recovery preserves order
    valid_box = (det_boxes[:, 1] < det_boxes[:, 3]) & (det_boxes[:, 0] < det_boxes[:, 2])
    invalid = ~valid_box[rows] & ~dropped
    num_dropped_invalid_box = int(invalid.sum())
    dropped |= invalid
    del valid_box, invalid

    # Detections stay in input order (sequential memory access); `rank` is each one's place in the score order
    # (score desc, then input order): within a (keyframe, class) that is the official matching order, within a
    # class the P/R order.
    kept = ~dropped
    rank = np.empty(rows.size, dtype=np.int64)
    rank[by_score] = np.arange(rows.size)
    del by_score
    rank = rank[kept]
    selected = rows[kept]
    span = max(rows.size, 1)
    del rows, kept, dropped
    d_cls = det_cls[selected]
    del det_cls
    d_group = det_key[selected]
    det_keyframe_seen = np.zeros(max(num_keys, 1), dtype=bool)
    det_keyframe_seen[d_group] = True
    num_detection_keyframes = int(det_keyframe_seen.sum())
    d_group *= n_classes
    d_group += d_cls
    g_group = gt_key_kept * n_classes + gt_cls_kept
    if gt_inverted.any():  # the official code raises there instead of scoring (np_box_list.BoxList's check)
        clash = int(np.isin(g_group[gt_inverted], d_group).sum())
        if clash:
            notes.append(
                f"{clash} ground-truth boxes with x2 < x1 or y2 < y1 share a keyframe and class with a scored "
                "detection: the official code stops there (ValueError: Invalid box data); here they count as "
                "ground truth and are never matched"
            )
    tp = match_detections(d_group, det_boxes, g_group, gt_boxes_kept, iou_threshold, rank=rank, box_rows=selected)
    del d_group

    # Per class VOC AP over all keyframes, detections ranked by score (ties: earlier input row first): one sort
    # of (class, rank) keys gives every class's detection count and the rank of each true positive in its class.
    num_gt = np.bincount(gt_cls_kept, minlength=n_classes)
    class_key = d_cls * span
    class_key += rank
    del rank
    if keep_ranking:
        in_class_order = np.argsort(class_key)
        class_key_sorted = class_key[in_class_order]
    else:
        class_key_sorted = np.sort(class_key)
    class_starts = np.searchsorted(class_key_sorted, np.arange(n_classes + 1, dtype=np.int64) * span)
    hit_keys = np.sort(class_key[tp])
    hit_cls = hit_keys // span
    hit_rank = np.searchsorted(class_key_sorted, hit_keys) - class_starts[hit_cls]  # rank within the class
    hit_starts = np.searchsorted(hit_cls, np.arange(n_classes + 1))
    per_class: dict[int, float] = {}
    num_det_per_class: dict[int, int] = {}
    num_tp_per_class: dict[int, int] = {}
    for i, cid in enumerate(class_list):
        n_class_det = int(class_starts[i + 1] - class_starts[i])
        hits = hit_rank[hit_starts[i]:hit_starts[i + 1]]
        per_class[cid] = voc_average_precision_at(hits, n_class_det, int(num_gt[i]))
        num_det_per_class[cid] = n_class_det
        num_tp_per_class[cid] = int(hits.size)
    ranking = None
    if keep_ranking:
        ranked_scores = np.asarray(det_scores)[selected][in_class_order]
        ranked_hits = tp[in_class_order]
        ranking = {
            cid: (ranked_scores[class_starts[i]:class_starts[i + 1]], ranked_hits[class_starts[i]:class_starts[i + 1]])
            for i, cid in enumerate(class_list)
        }
    values = np.asarray(list(per_class.values()), dtype=np.float64)
    if np.all(np.isnan(values)):
        notes.append("no ground-truth box of a label-map class on a scored keyframe: mAP is undefined (NaN)")
        mean_ap = math.nan
    else:
        mean_ap = float(np.nanmean(values))
    if n_det_rows == 0:
        notes.append("no detections: every class with ground truth has AP 0")
    if num_ignored_class:
        notes.append(f"{num_ignored_class} detection rows have a class outside the label map and were ignored")
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return FrameMapResult(
        mAP=mean_ap,
        per_class=per_class,
        num_gt_per_class={cid: int(num_gt[i]) for i, cid in enumerate(class_list)},
        num_detections_per_class=num_det_per_class,
        num_true_positives_per_class=num_tp_per_class,
        num_gt_boxes=int(gt_cls_kept.size),
        num_keyframes=num_keyframes,
        num_detection_keyframes=num_detection_keyframes,
        num_detections=n_det_rows,
        num_detections_evaluated=int(selected.size),
        num_ignored_class=num_ignored_class,
        num_dropped_excluded=num_dropped_excluded,
        num_dropped_unscored=num_dropped_unscored,
        num_dropped_top_k=num_dropped_top_k,
        num_dropped_invalid_box=num_dropped_invalid_box,
        num_excluded_keyframes=num_excluded_keyframes,
        protocol=protocol,
        iou_threshold=float(iou_threshold),
        top_k=int(top_k),
        warnings=notes,
        num_degenerate_gt_boxes=num_degenerate_gt,
        ranking=ranking,
    )
