"""Two-view pseudo-labelling: score every target box under two random views, apply the selection rule, and
write the kept samples as AVA-layout rows (+ score) in the source label space, with statistics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from seal_transfer.data.datamodules import KeyframeSplit
from seal_transfer.data.datasets import collate_keyframes
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.data.workers import decode_worker_init
from seal_transfer.pseudo.selection import Selection, select


@dataclass
class TwoViewScores:
    box_ids: np.ndarray  # (N,) ids into the split's box arrays, ascending
    view1: np.ndarray  # (N, C)
    view2: np.ndarray  # (N, C)
    seconds: float


@torch.inference_mode()
def score_two_views(
    module: Any,
    split: KeyframeSplit,
    *,
    batch_size: int,
    num_workers: int = 0,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    device: Optional[torch.device] = None,
) -> TwoViewScores:
    """Score all boxes of `split` (a two-view dataset) with `module.scores`.

    One backbone pass per keyframe per view; all boxes of a keyframe go through the RoI head together. `shard`
    = (rank, world_size) labels every world_size-th keyframe starting at rank, so shards are disjoint and their
    union (sorted by box id) equals a single-process run.
    """
    rank, world = shard
    dataset = split.dataset
    indices = list(range(rank, len(dataset), world))
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_keyframes,
        worker_init_fn=decode_worker_init,
    )
    device = device or next(module.parameters()).device
    was_training = module.training
    module.eval()
    ids: list[np.ndarray] = []
    v1: list[np.ndarray] = []
    v2: list[np.ndarray] = []
    started = time.time()
    boxes_done = 0
    bar = tqdm(total=len(indices), desc="pseudo-label", unit="kf", disable=not progress, dynamic_ncols=True)
    try:
        for batch in loader:
            views = []
            for inputs, boxes in batch["views"]:
                views.append(module.scores([x.to(device) for x in inputs], boxes.to(device)).float().cpu().numpy())
            ids.append(batch["box_ids"].numpy())
            v1.append(views[0])
            v2.append(views[1])
            boxes_done += len(batch["box_ids"])
            bar.update(len(batch["index"]))
            elapsed = max(time.time() - started, 1e-9)
            bar.set_postfix(boxes_per_s=f"{boxes_done / elapsed:.1f}")
    finally:
        bar.close()
        module.train(was_training)
    num_classes = int(module.hparams.num_classes)
    box_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    order = np.argsort(box_ids, kind="stable")

    def stacked(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)[order] if parts else np.zeros((0, num_classes), np.float32)

    return TwoViewScores(box_ids[order], stacked(v1), stacked(v2), time.time() - started)


def pseudo_label_rows(
    split: KeyframeSplit, scores: TwoViewScores, selection: Selection, source_labelmap: LabelMap
) -> AvaTable:
    """Kept samples as `pseudo`-layout rows (one per kept class), ordered by box id then class column."""
    return label_rows(split, scores, selection.labels.numpy(), source_labelmap)


def uncertain_classes(scores: TwoViewScores, selection: Selection, negative_threshold: float) -> np.ndarray:
    """(N, C) bool: the classes of each kept box that are neither its pseudo label nor confidently absent (a score
    at or above `negative_threshold` in either view). `adapt.negatives=confident` leaves them out of the loss, so
    a box labelled with one action is not also taught that its other, unrecognised actions are absent (the
    negative pseudo labels of UPS, Rizve et al., ICLR 2021)."""
    labels = selection.labels.numpy()
    unsure = np.maximum(scores.view1, scores.view2) >= negative_threshold
    return unsure & ~labels & selection.keep.numpy()[:, None]


def label_rows(split: KeyframeSplit, scores: TwoViewScores, labels: np.ndarray, source_labelmap: LabelMap
               ) -> AvaTable:
    """The (box, class) pairs where `labels` (N, C bool) is set, as `pseudo`-layout rows with the two views' mean
    score, ordered by box id then class column."""
    box_rows, class_cols = np.nonzero(labels)
    if len(box_rows) == 0:
        return AvaTable.empty()
    base = split.boxes_table(scores.box_ids[box_rows])
    ids = np.asarray(source_labelmap.ids, dtype=np.int64)
    chosen_scores = (scores.view1[box_rows, class_cols] + scores.view2[box_rows, class_cols]) / 2
    return AvaTable(
        base.video_ids, base.timestamps, base.boxes, ids[class_cols], base.person_ids, chosen_scores.astype(np.float32)
    )


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(box[0], others[:, 0])
    iy1 = np.maximum(box[1], others[:, 1])
    ix2 = np.minimum(box[2], others[:, 2])
    iy2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def truth_for_boxes(boxes: AvaTable, truth: AvaTable, iou_threshold: float = 0.5) -> list[set[int]]:
    """Hidden true source-space actions of each box: those of the truth box with the highest IoU ≥ threshold."""
    by_key: dict[tuple[str, float], list[int]] = {}
    for i, key in enumerate(zip(truth.video_ids.tolist(), truth.timestamps.tolist())):
        by_key.setdefault(key, []).append(i)
    out: list[set[int]] = []
    for i, key in enumerate(zip(boxes.video_ids.tolist(), boxes.timestamps.tolist())):
        rows = by_key.get(key)
        if not rows:
            out.append(set())
            continue
        rows_arr = np.asarray(rows)
        ious = _iou(boxes.boxes[i].astype(np.float64), truth.boxes[rows_arr].astype(np.float64))
        best = ious.max()
        if best < iou_threshold:
            out.append(set())
            continue
        match = rows_arr[np.isclose(ious, best)]
        out.append({int(a) for a in truth.action_ids[match]})
    return out


def oracle_selection(rule: Selection, truths: list[set[int]], source_labelmap: LabelMap) -> Selection:
    """Every pool box that has hidden truth, labelled with all of its true source classes: what a perfect
    selection rule could hand the rounds (the `adapt.labels=oracle` upper bound). Boxes whose truth lies outside
    the source label map keep only the classes inside it."""
    column = source_labelmap.index_of()
    labels = torch.zeros_like(rule.labels)
    for row, truth_set in enumerate(truths):
        for cid in truth_set:
            if cid in column:
                labels[row, column[cid]] = True
    return replace(rule, keep=labels.any(dim=1), labels=labels)


def random_selection(rule: Selection, rng: np.random.Generator) -> Selection:
    """The rule's kept boxes, each kept label replaced by a class drawn from the rule's kept-class frequencies
    (the `adapt.labels=random` lower bound: same boxes, same class marginal, no information about the box)."""
    labels = rule.labels.numpy()
    counts = labels.sum(0).astype(np.float64)
    classes = np.flatnonzero(counts > 0)
    out = np.zeros_like(labels)
    for row in np.flatnonzero(labels.any(1)):
        k = min(int(labels[row].sum()), len(classes))  # as many labels as the rule gave this box, distinct
        out[row, rng.choice(classes, size=k, replace=False, p=counts[classes] / counts[classes].sum())] = True
    return replace(rule, labels=torch.from_numpy(out), keep=torch.from_numpy(out.any(1)))


def coverage_stats(selection: Selection, source_labelmap: LabelMap) -> dict[str, Any]:
    """How spread the kept labels are over the source classes (see `coverage_from_counts`)."""
    counts = selection.labels.numpy().sum(0)
    return coverage_from_counts(
        {str(source_labelmap.ids[c]): int(k) for c, k in enumerate(counts) if k > 0}, len(source_labelmap)
    )


def coverage_from_counts(counts: dict[str, int], num_classes: int) -> dict[str, Any]:
    """Kept labels per class id → classes kept, the largest class and its share, and the entropy of the class
    distribution divided by log(num_classes): a collapse onto one class shows as 1 class, share 1, entropy 0."""
    total = sum(counts.values())
    if total == 0:
        return {"kept_classes": 0, "largest_class": None, "largest_class_share": None, "kept_label_entropy": None}
    p = np.asarray([counts[c] for c in sorted(counts)], np.float64) / total
    entropy = float(-(p * np.log(p)).sum() / np.log(num_classes)) if num_classes > 1 else 0.0
    largest = max(sorted(counts), key=lambda c: counts[c])
    return {
        "kept_classes": len(counts),
        "largest_class": int(largest),
        "largest_class_share": counts[largest] / total,
        "kept_label_entropy": round(entropy, 6),
    }


def truth_stats(
    scores: TwoViewScores, selection: Selection, truths: list[set[int]], source_labelmap: LabelMap
) -> dict[str, Any]:
    """What the hidden truth says about the model and the kept labels, beside the baselines they must beat.

    `argmax_precision`: how often the model's top source class (view 1, no threshold) is a true action of the
    box, over boxes that have any; `majority_class_frequency`: the precision of labelling every such box with
    the most frequent true class (what a collapsed labeller scores); `kept_truth_class_coverage`: the fraction
    of source classes present in the truth that the kept labels include.
    """
    ids = np.asarray(source_labelmap.ids)
    has_truth = np.array([bool(t) for t in truths], dtype=bool)
    n_truth = int(has_truth.sum())
    out: dict[str, Any] = {"boxes_with_truth": n_truth}
    if n_truth == 0:
        return out
    predicted = ids[scores.view1.argmax(1)] if len(scores.box_ids) else np.zeros(0, np.int64)
    out["argmax_precision"] = float(np.mean([int(predicted[i]) in truths[i] for i in np.flatnonzero(has_truth)]))
    present: dict[int, int] = {}
    for t in truths:
        for cid in t:
            present[cid] = present.get(cid, 0) + 1
    present = {c: k for c, k in present.items() if c in set(ids.tolist())}
    out["truth_class_counts"] = {str(c): present[c] for c in sorted(present)}
    if present:
        majority = max(sorted(present), key=lambda c: present[c])
        out["majority_class"] = int(majority)
        out["majority_class_frequency"] = present[majority] / n_truth
    kept_classes = {int(ids[c]) for c in np.flatnonzero(selection.labels.numpy().any(0))}
    out["truth_classes"] = len(present)
    out["kept_truth_class_coverage"] = len(kept_classes & set(present)) / len(present) if present else None
    return out


LABEL_OUTCOMES = ("true_only_action", "true_other_action_unlabelled", "true_all_labelled", "no_action_box",
                  "wrong_class")
TRUE_OUTCOMES = LABEL_OUTCOMES[:3]  # the outcomes that count as a correct label (the precision's numerator)


def label_error_breakdown(kept: Sequence[set[int]], truths: Sequence[set[int]]) -> dict[str, int]:
    """Where the kept (box, class) labels go wrong, against the hidden truth of the same boxes.

    A true label is `true_only_action` (the box does that one action), `true_other_action_unlabelled` (the box
    also does another action no kept label names: a single-class rule on a multi-action box) or
    `true_all_labelled` (every action of a multi-action box is labelled). A false one sits on a box with no
    source action at all (`no_action_box`: e.g. a person standing still) or names a class the box does not do
    (`wrong_class`). The counts sum to the number of kept labels; the first three over that sum is the
    pseudo-label precision.
    """
    out = dict.fromkeys(LABEL_OUTCOMES, 0)
    for labels, truth in zip(kept, truths, strict=True):
        for cid in labels:
            if not truth:
                out["no_action_box"] += 1
            elif cid not in truth:
                out["wrong_class"] += 1
            elif len(truth) == 1:
                out["true_only_action"] += 1
            elif truth <= labels:
                out["true_all_labelled"] += 1
            else:
                out["true_other_action_unlabelled"] += 1
    return out


def selection_stats(
    split: KeyframeSplit,
    scores: TwoViewScores,
    selection: Selection,
    source_labelmap: LabelMap,
    truth: Optional[AvaTable],
    truths: Optional[list[set[int]]] = None,
) -> dict[str, Any]:
    """What a researcher checks after each round: how much was kept, how often views agreed, how spread the
    kept classes are, and — where the hidden truth exists (synthetic target) — how precise the kept pseudo labels
    are next to the model's plain argmax accuracy and the majority-class baseline."""
    n = int(len(scores.box_ids))
    keep = selection.keep.numpy()
    kept = int(keep.sum())
    labels = selection.labels.numpy()
    per_class = {str(source_labelmap.ids[c]): int(v) for c, v in enumerate(labels.sum(0)) if v > 0}
    stats: dict[str, Any] = {
        "samples_seen": n,
        "keyframes_seen": int(len(np.unique(split.box_keyframes()[scores.box_ids]))) if n else 0,
        "kept": kept,
        "kept_fraction": kept / n if n else 0.0,
        "view_agreement_rate": float(selection.agree.float().mean()) if n else 0.0,
        "confident_fraction": float(selection.confident.float().mean()) if n else 0.0,
        "mean_score_kept": float(selection.score[selection.keep].mean()) if kept else None,
        "mean_max_score_all": float(np.maximum(scores.view1.max(1), scores.view2.max(1)).mean()) if n else None,
        "per_class_counts": per_class,
        **coverage_stats(selection, source_labelmap),
        "labelling_seconds": round(scores.seconds, 2),
        "boxes_per_second": round(n / scores.seconds, 2) if scores.seconds > 0 else None,
    }
    if truth is None:
        return stats
    if truths is None:
        truths = pool_truths(split, scores, truth)
    stats.update(truth_stats(scores, selection, truths, source_labelmap))
    ids = np.asarray(source_labelmap.ids)
    kept_sets = [{int(ids[c]) for c in np.flatnonzero(labels[row])} for row in np.flatnonzero(keep)]
    breakdown = label_error_breakdown(kept_sets, [truths[row] for row in np.flatnonzero(keep)])
    total = sum(breakdown.values())
    hits = sum(breakdown[k] for k in TRUE_OUTCOMES)
    stats["kept_label_breakdown"] = breakdown
    stats["pseudo_label_precision"] = hits / total if total else None
    if total:
        stats["precision_note"] = (
            "fraction of kept (box, class) labels that are true source-space actions (hidden truth)"
        )
    return stats


def pool_truths(split: KeyframeSplit, scores: TwoViewScores, truth: AvaTable) -> list[set[int]]:
    """Hidden true source classes of every scored box (empty set: no truth box matches it)."""
    if len(scores.box_ids) == 0:
        return []
    return truth_for_boxes(split.boxes_table(scores.box_ids), truth)


def run_selection(scores: TwoViewScores, lambda_c: float, score_views: str, multi_label: bool) -> Selection:
    return select(torch.from_numpy(scores.view1), torch.from_numpy(scores.view2), lambda_c, score_views, multi_label)
