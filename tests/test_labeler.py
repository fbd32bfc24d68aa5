"""Pseudo-label rows, statistics and hidden-truth matching on hand-made scores (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from seal_transfer.data.datamodules import KeyframeSplit
from seal_transfer.data.datasets import build_keyframe_index
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.pseudo.labeler import (
    TwoViewScores,
    label_error_breakdown,
    pseudo_label_rows,
    run_selection,
    selection_stats,
    truth_for_boxes,
)

SOURCE = LabelMap([10, 20, 30], {10: "walk", 20: "jump", 30: "wave"})


def _split() -> KeyframeSplit:
    boxes = AvaTable.from_columns(
        ["v", "v", "v"],
        [902, 902, 903],
        [[0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9], [0.2, 0.2, 0.6, 0.8]],
        person_ids=[0, 1, 0],
    )
    index = build_keyframe_index(boxes, None)
    return KeyframeSplit(SimpleNamespace(index=index), split=None, broken_videos=[])  # type: ignore[arg-type]


def _scores() -> TwoViewScores:
    v1 = np.array([[0.9, 0.1, 0.0], [0.2, 0.6, 0.1], [0.1, 0.2, 0.25]], np.float32)
    v2 = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.0], [0.1, 0.2, 0.28]], np.float32)
    return TwoViewScores(np.arange(3), v1, v2, seconds=1.0)


def test_rows_are_kept_boxes_with_source_ids_and_mean_scores() -> None:
    split, scores = _split(), _scores()
    sel = run_selection(scores, 0.3, "both", False)
    assert sel.keep.tolist() == [True, False, False]
    rows = pseudo_label_rows(split, scores, sel, SOURCE)
    assert len(rows) == 1 and rows.action_ids.tolist() == [10] and rows.person_ids.tolist() == [0]
    assert rows.timestamps.tolist() == [902] and rows.scores[0] == pytest.approx(0.8)
    np.testing.assert_allclose(rows.boxes[0], [0.1, 0.1, 0.4, 0.9])


def test_stats_with_hidden_truth_precision() -> None:
    split, scores = _split(), _scores()
    sel = run_selection(scores, 0.1, "both", True)  # multi-label, low threshold: several classes kept
    truth = AvaTable.from_columns(["v", "v"], [902, 902], [[0.1, 0.1, 0.4, 0.9], [0.1, 0.1, 0.4, 0.9]], [10, 30])
    stats = selection_stats(split, scores, sel, SOURCE, truth)
    labels = sel.labels.numpy()
    assert stats["samples_seen"] == 3 and stats["kept"] == int(sel.keep.sum())
    # box 0 keeps classes 10 (true) and 20 (false: 0.1 is not > 0.1 in view 1 → only 10); boxes 1, 2 have no truth
    kept_pairs = int(labels.sum())
    true_pairs = int(labels[0, 0])
    assert stats["pseudo_label_precision"] == pytest.approx(true_pairs / kept_pairs)
    assert stats["per_class_counts"]["10"] == int(labels[:, 0].sum())


def test_label_error_breakdown_sorts_every_kept_label_once() -> None:
    kept = [{10}, {10}, {10, 30}, {20}, {10}, set()]
    truths = [{10}, {10, 30}, {10, 30}, {10, 30}, set(), {20}]
    out = label_error_breakdown(kept, truths)
    assert out == {"true_only_action": 1,  # box 0: its only action
                   "true_other_action_unlabelled": 1,  # box 1: walks and waves, labelled walk only
                   "true_all_labelled": 2,  # box 2: both actions labelled (two labels)
                   "no_action_box": 1,  # box 4: no source action at all
                   "wrong_class": 1}  # box 3: labelled jump, does walk + wave; box 5 kept nothing
    assert sum(out.values()) == sum(len(k) for k in kept)


def test_stats_breakdown_agrees_with_precision() -> None:
    split, scores = _split(), _scores()
    sel = run_selection(scores, 0.1, "both", True)
    truth = AvaTable.from_columns(["v", "v"], [902, 902], [[0.1, 0.1, 0.4, 0.9], [0.1, 0.1, 0.4, 0.9]], [10, 30])
    stats = selection_stats(split, scores, sel, SOURCE, truth)
    b = stats["kept_label_breakdown"]
    assert sum(b.values()) == int(sel.labels.numpy().sum())
    true = b["true_only_action"] + b["true_other_action_unlabelled"] + b["true_all_labelled"]
    assert stats["pseudo_label_precision"] == pytest.approx(true / sum(b.values()))
    assert b["no_action_box"] == int(sel.labels.numpy()[1:].sum())  # boxes 1 and 2 have no truth


def test_truth_matching_uses_best_iou() -> None:
    boxes = AvaTable.from_columns(
        ["v", "v", "w"], [902, 902, 902], [[0.1, 0.1, 0.4, 0.9], [0.6, 0.6, 0.7, 0.7], [0.1, 0.1, 0.4, 0.9]]
    )
    truth = AvaTable.from_columns(["v", "v"], [902, 902], [[0.12, 0.1, 0.42, 0.9], [0.5, 0.1, 0.9, 0.9]], [20, 30])
    assert truth_for_boxes(boxes, truth) == [{20}, set(), set()]
