"""adapt.negatives=confident on hand-made inputs: which classes are left out, how the index carries the mask, and
that the loss does not see what the mask leaves out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seal_transfer.data.datasets import build_keyframe_index, collate_keyframes
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.engine.detection import detection_loss
from seal_transfer.errors import UserError
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.labeler import TwoViewScores, run_selection, uncertain_classes

LABELS = LabelMap([1, 2, 3], {1: "walk", 2: "wave", 3: "carry"})
BOX_A, BOX_B = [0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9]


def test_uncertain_classes_are_the_kept_boxes_unsure_unlabelled_ones() -> None:
    v1 = np.array([[0.9, 0.20, 0.01], [0.8, 0.02, 0.01], [0.2, 0.1, 0.1]], np.float32)
    v2 = np.array([[0.8, 0.01, 0.02], [0.9, 0.01, 0.06], [0.2, 0.1, 0.1]], np.float32)
    scores = TwoViewScores(np.arange(3), v1, v2, seconds=1.0)
    sel = run_selection(scores, 0.3, "both", False)
    assert sel.keep.tolist() == [True, True, False]
    unsure = uncertain_classes(scores, sel, 0.05)
    # box 0: walk is its label, wave scores 0.20 in view 1 (unsure), carry is below 0.05 in both (a negative);
    # box 1: carry reaches 0.06 in view 2 (unsure); box 2 is not kept, so nothing of it trains at all.
    assert unsure.tolist() == [[False, True, False], [False, False, True], [False, False, False]]


def _table() -> AvaTable:
    return AvaTable.from_columns(["v", "v", "v"], [902, 902, 902], [BOX_A, BOX_A, BOX_B], [1, 3, 2],
                                 person_ids=[0, 0, 1])


def test_index_masks_exactly_the_ignored_pairs() -> None:
    ignored = AvaTable.from_columns(["v", "v"], [902, 902], [BOX_A, BOX_B], [2, 3], person_ids=[0, 1])
    index = build_keyframe_index(_table(), LABELS, ignored=ignored)
    assert index.labels.tolist() == [[1, 0, 1], [0, 1, 0]]
    assert index.label_mask.tolist() == [[1, 0, 1], [1, 1, 0]]
    assert build_keyframe_index(_table(), LABELS).label_mask is None  # no ignored table: every entry counts
    kept = index.select(np.array([True]))
    assert kept.label_mask.tolist() == index.label_mask.tolist()


def test_index_mask_matches_a_row_by_row_lookup_on_many_keyframes() -> None:
    """Boxes that share coordinates across videos, times and persons: each ignored row lands on its own box only."""
    rng = np.random.default_rng(0)
    coords = [[0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9], [0.2, 0.3, 0.6, 0.8]]
    boxes = [(v, t, p, c) for v in ("a", "b") for t in (902, 903, 905) for p in (0, 1) for c in range(3)
             if rng.random() < 0.7]
    actions = rng.integers(1, 4, len(boxes))
    table = AvaTable.from_columns([b[0] for b in boxes], [b[1] for b in boxes], [coords[b[3]] for b in boxes],
                                  actions.tolist(), person_ids=[b[2] for b in boxes])
    free = [(b, a) for b, own in zip(boxes, actions) for a in (1, 2, 3) if a != own]
    chosen = [free[i] for i in rng.choice(len(free), size=len(free) // 2, replace=False)]
    ignored = AvaTable.from_columns([b[0] for b, _ in chosen], [b[1] for b, _ in chosen],
                                    [coords[b[3]] for b, _ in chosen], [a for _, a in chosen],
                                    person_ids=[b[2] for b, _ in chosen])
    index = build_keyframe_index(table, LABELS, ignored=ignored)
    where = {}
    for k, (video, t) in enumerate(zip(index.video_ids, index.timestamps)):
        for i in range(index.box_start[k], index.box_start[k + 1]):
            where[(video, float(t), int(index.person_ids[i]), tuple(np.round(index.boxes[i], 4).tolist()))] = i
    expected = np.ones_like(index.labels)
    for b, a in chosen:
        expected[where[(b[0], float(b[1]), b[2], tuple(np.round(np.float32(coords[b[3]]), 4).tolist()))], a - 1] = 0
    assert len(chosen) > 10 and np.array_equal(index.label_mask, expected)


@pytest.mark.parametrize("row", [([0.6, 0.6, 0.7, 0.7], 2, 0),  # no such box
                                 (BOX_A, 1, 0),  # the box's own pseudo label cannot also be ignored
                                 (BOX_A, 9, 0)])  # a class outside the label map
def test_index_refuses_an_ignored_pair_it_cannot_place(row) -> None:
    box, action, person = row
    ignored = AvaTable.from_columns(["v"], [902], [box], [action], person_ids=[person])
    with pytest.raises(ValueError, match="ignored label row 0"):
        build_keyframe_index(_table(), LABELS, ignored=ignored)


def test_collate_carries_the_mask_only_when_present() -> None:
    def item(mask):
        view = ([torch.zeros(3, 2, 4, 4), torch.zeros(3, 4, 4, 4)], np.zeros((1, 4), np.float32))
        out = {"views": [view], "labels": torch.zeros(1, 3), "box_scores": torch.ones(1), "index": 0,
               "box_ids": torch.zeros(1, dtype=torch.long)}
        return out if mask is None else {**out, "label_mask": torch.tensor([mask])}

    assert "label_mask" not in collate_keyframes([item(None), item(None)])
    batch = collate_keyframes([item([1.0, 0.0, 1.0]), item([1.0, 1.0, 0.0])])
    assert batch["label_mask"].tolist() == [[1, 0, 1], [1, 1, 0]]


def test_masked_loss_ignores_what_the_mask_leaves_out() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()
    ones = torch.ones(4, 3)
    assert torch.allclose(detection_loss(logits, targets, None, "bce", None, ones),
                          detection_loss(logits, targets, None, "bce"))
    mask = torch.tensor([[1.0, 0, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]])
    moved = logits.clone()
    moved[mask == 0] += 5.0  # what is left out cannot change the loss
    a, b = detection_loss(logits, targets, None, "bce", None, mask), detection_loss(moved, targets, None, "bce",
                                                                                      None, mask)
    assert torch.allclose(a, b)
    terms = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.allclose(a, terms[mask == 1].mean())  # the mean over the counted terms only
    w = torch.tensor([2.0, 1.0, 1.0, 0.0])  # box weights compose: box 3 drops out entirely
    expected = (terms * mask * (w / w.mean())[:, None]).sum() / mask.sum()
    assert torch.allclose(detection_loss(logits, targets, None, "bce", w, mask), expected)
    pose = torch.tensor([0, 1])
    pose_targets = torch.tensor([[1.0, 0, 1], [0, 1.0, 0], [1.0, 0, 0], [0, 1.0, 1]])
    assert torch.allclose(detection_loss(logits, pose_targets, pose, "bce_softmax_pose", None, ones),
                          detection_loss(logits, pose_targets, pose, "bce_softmax_pose"))


@pytest.mark.parametrize("field,value,match", [("negatives", "some", "adapt.negatives"),
                                               ("negative_threshold", 0.0, "adapt.negative_threshold"),
                                               ("negative_threshold", 1.0, "adapt.negative_threshold")])
def test_config_refuses_bad_negatives(field, value, match) -> None:
    with pytest.raises(UserError, match=match):
        AdaptConfig(**{field: value}).validate()


def test_a_round_labelled_without_the_record_refuses_in_one_line(tmp_path) -> None:
    from seal_transfer.pseudo.rounds import _ignored_labels

    round_dir = tmp_path / "round_1"
    round_dir.mkdir()
    with pytest.raises(UserError, match="round_1/ignored_labels.csv: missing.*force=true"):
        _ignored_labels(round_dir)
