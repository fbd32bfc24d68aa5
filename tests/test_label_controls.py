"""Headroom controls of the adaptation stage (adapt.labels=oracle|random), the per-round diagnostics, and the
label-scarce regime's labelled-video subset (data.target.label_fraction), on hand-made tables and scores."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seal_transfer.data.datamodules import KeyframeSplit
from seal_transfer.data.datasets import build_keyframe_index
from seal_transfer.data.domains import DomainSplit, labelled_videos, restrict_to_labelled_videos
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.errors import UserError
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.labeler import (
    TwoViewScores,
    coverage_from_counts,
    oracle_selection,
    pool_truths,
    random_selection,
    run_selection,
    selection_stats,
)
from seal_transfer.pseudo.selection import Selection

SOURCE = LabelMap([10, 20, 30], {10: "walk", 20: "jump", 30: "wave"})
BOXES = [[0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9], [0.2, 0.2, 0.6, 0.8], [0.6, 0.2, 0.9, 0.8]]


def _split() -> KeyframeSplit:
    table = AvaTable.from_columns(["v", "v", "v", "w"], [902, 902, 903, 902], BOXES, person_ids=[0, 1, 0, 0])
    index = build_keyframe_index(table, None)
    return KeyframeSplit(SimpleNamespace(index=index), split=None, broken_videos=[])  # type: ignore[arg-type]


def _scores() -> TwoViewScores:
    # Every box scores 'walk' highest in both views: the collapsed labeller the controls are built to expose.
    v1 = np.array([[0.9, 0.1, 0.0], [0.8, 0.6, 0.1], [0.7, 0.2, 0.25], [0.6, 0.5, 0.1]], np.float32)
    v2 = np.array([[0.8, 0.2, 0.1], [0.7, 0.3, 0.0], [0.9, 0.2, 0.28], [0.5, 0.4, 0.2]], np.float32)
    return TwoViewScores(np.arange(4), v1, v2, seconds=1.0)


def _truth() -> AvaTable:
    # box 0: walk; box 1: jump + wave; box 2: wave; box 3 (video w): no truth row
    return AvaTable.from_columns(
        ["v", "v", "v", "v"], [902, 902, 902, 903], [BOXES[0], BOXES[1], BOXES[1], BOXES[2]], [10, 20, 30, 30]
    )


def test_oracle_keeps_every_box_with_truth_and_all_its_true_classes() -> None:
    split, scores = _split(), _scores()
    truths = pool_truths(split, scores, _truth())
    assert truths == [{10}, {20, 30}, {30}, set()]
    rule = run_selection(scores, 0.3, "both", False)
    oracle = oracle_selection(rule, truths, SOURCE)
    assert oracle.keep.tolist() == [True, True, True, False]
    assert oracle.labels.int().tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]]
    stats = selection_stats(split, scores, oracle, SOURCE, _truth(), truths)
    assert stats["pseudo_label_precision"] == 1.0
    assert stats["kept_classes"] == 3 and stats["kept_truth_class_coverage"] == 1.0


def test_random_keeps_the_rules_boxes_and_draws_from_its_kept_class_frequencies() -> None:
    rule_labels = torch.zeros(6, 3, dtype=torch.bool)
    rule_labels[[0, 1, 2], 0] = True  # three boxes kept as class 0
    rule_labels[3, 2] = True  # one kept as class 2; box 4 and 5 dropped
    keep = rule_labels.any(1)
    zeros = torch.zeros(6)
    rule = Selection(keep, rule_labels, zeros.long(), zeros, keep.clone(), keep.clone())
    draws = np.zeros(3)
    for seed in range(300):
        out = random_selection(rule, np.random.default_rng(seed))
        assert out.keep.tolist() == keep.tolist()  # the same boxes
        assert out.labels.sum(1).tolist() == rule_labels.sum(1).tolist()  # one label per kept box, as the rule
        draws += out.labels.numpy().sum(0)
    assert draws[1] == 0  # a class the rule never kept is never drawn
    assert draws[0] / draws.sum() == pytest.approx(0.75, abs=0.04)  # the rule's kept-class frequency


def test_random_is_seeded() -> None:
    rule = run_selection(_scores(), 0.3, "both", False)
    a = random_selection(rule, np.random.default_rng([0, 1, 11]))
    b = random_selection(rule, np.random.default_rng([0, 1, 11]))
    assert torch.equal(a.labels, b.labels)


def test_diagnostics_show_collapse_against_the_majority_baseline() -> None:
    split, scores = _split(), _scores()
    truths = pool_truths(split, scores, _truth())
    rule = run_selection(scores, 0.3, "both", False)
    stats = selection_stats(split, scores, rule, SOURCE, _truth(), truths)
    # argmax is 'walk' for every box; of the 3 boxes with truth only box 0 does walk
    assert stats["argmax_precision"] == pytest.approx(1 / 3)
    assert stats["boxes_with_truth"] == 3
    # wave is true for 2 of the 3 boxes with truth: the majority-class baseline precision
    assert stats["majority_class"] == 30 and stats["majority_class_frequency"] == pytest.approx(2 / 3)
    assert stats["kept_classes"] == 1 and stats["largest_class"] == 10 and stats["largest_class_share"] == 1.0
    assert stats["kept_label_entropy"] == 0.0
    assert stats["kept_truth_class_coverage"] == pytest.approx(1 / 3)


def test_coverage_entropy_is_normalised() -> None:
    uniform = coverage_from_counts({"1": 5, "2": 5, "3": 5, "4": 5}, 4)
    assert uniform["kept_label_entropy"] == pytest.approx(1.0)
    assert uniform["largest_class_share"] == 0.25
    assert coverage_from_counts({}, 4)["kept_classes"] == 0


def test_labels_key_is_validated() -> None:
    with pytest.raises(UserError, match="adapt.labels"):
        AdaptConfig(labels="truth").validate()


def _target_split(n_videos: int) -> DomainSplit:
    vids = [f"vid{i:02d}" for i in range(n_videos) for _ in range(3)]
    table = AvaTable.from_columns(vids, [902, 903, 904] * n_videos, [[0.1, 0.1, 0.5, 0.9]] * len(vids),
                                  [1] * len(vids))
    paths = {v: f"/videos/{v}.mp4" for v in set(vids)}
    return DomainSplit(table, LabelMap([1], {1: "stand"}), {v: None for v in paths}, paths)  # type: ignore[misc]


def test_label_fraction_subset_is_video_level_deterministic_and_nested() -> None:
    ids = {f"vid{i:02d}" for i in range(24)}
    subsets = {f: labelled_videos(ids, f, seed=3) for f in (0.1, 0.25, 0.5, 1.0)}
    assert [len(subsets[f]) for f in (0.1, 0.25, 0.5, 1.0)] == [3, 6, 12, 24]
    assert subsets[0.1] < subsets[0.25] < subsets[0.5] < subsets[1.0] == ids
    assert labelled_videos(set(sorted(ids, reverse=True)), 0.25, seed=3) == subsets[0.25]  # order-free
    assert labelled_videos(ids, 0.25, seed=4) != subsets[0.25]  # the seed matters
    assert len(labelled_videos({"only"}, 0.1, seed=0)) == 1  # never an empty training set


def test_restrict_keeps_whole_videos_only() -> None:
    split = _target_split(10)
    sub = restrict_to_labelled_videos(split, 0.25, seed=0)
    kept = set(sub.table.video_ids.tolist())
    assert len(kept) == 3 and set(sub.video_paths) == kept
    assert len(sub.table) == 3 * 3  # every row of each kept video, none of the others
