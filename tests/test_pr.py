"""PR curves (evaluation.pr): each class's curve has exactly the AP, GT count, detection count and true positives
that frame_map reports, under both protocols and with the top-k cut."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.evaluation.frame_map import frame_map
from seal_transfer.evaluation.pr import precision_recall_curves


def random_eval_data(seed: int) -> tuple[AvaTable, AvaTable, list[tuple[str, float]]]:
    rng = np.random.default_rng(seed)
    n_gt, n_det = 60, 900
    vids = np.array(["a", "b", "c"])
    gt_v = vids[rng.integers(0, 3, n_gt)]
    gt_t = rng.integers(902, 908, n_gt).astype(float)
    xy = rng.random((n_gt, 2)) * 0.5
    gt_boxes = np.concatenate([xy, xy + 0.2 + rng.random((n_gt, 2)) * 0.3], 1)
    gt = AvaTable.from_columns(gt_v, gt_t, gt_boxes, rng.integers(1, 6, n_gt), np.arange(n_gt))
    pick = rng.integers(0, n_gt, n_det)
    det_boxes = np.clip(gt_boxes[pick] + rng.normal(0, 0.05, (n_det, 4)), 0, 1)
    det_boxes = np.concatenate([np.minimum(det_boxes[:, :2], det_boxes[:, 2:]),
                                np.maximum(det_boxes[:, :2], det_boxes[:, 2:])], 1)
    det_boxes[:5, 2] = det_boxes[:5, 0]  # empty boxes are dropped by the evaluator
    det_t = gt_t[pick].copy()
    det_t[:40] = 950.0  # keyframes without GT: ignored (2020) or false positives (2019)
    dets = AvaTable.from_columns(gt_v[pick], det_t, det_boxes, rng.integers(1, 8, n_det),
                                 scores=np.round(rng.random(n_det), 3))  # rounded: ties on purpose
    exclusions = [("a", 903.0)]
    return gt, dets, exclusions


@pytest.mark.parametrize("protocol", ["2020", "2019"])
@pytest.mark.parametrize("top_k", [50, 3])
def test_pr_curves_have_frame_map_ap(protocol: str, top_k: int) -> None:
    gt, dets, exclusions = random_eval_data(1)
    classes = [1, 2, 3, 4, 5, 6]  # 6 has no GT
    expected = frame_map(gt, dets, classes, exclusions=exclusions, protocol=protocol, top_k=top_k)
    curves = precision_recall_curves(gt, dets, classes, exclusions=exclusions, protocol=protocol, top_k=top_k)
    assert list(curves) == classes
    for cid in classes:
        curve, ap = curves[cid], expected.per_class[cid]
        assert (math.isnan(ap) and math.isnan(curve.ap)) or curve.ap == pytest.approx(ap, abs=1e-12), cid
        assert curve.num_gt == expected.num_gt_per_class[cid]
        assert curve.precision.size == expected.num_detections_per_class[cid]
        if curve.scores.size:
            assert np.all(np.diff(curve.scores) <= 0)  # ranking order
            assert curve.recall[-1] * curve.num_gt == pytest.approx(expected.num_true_positives_per_class[cid])
    assert any(curves[c].precision.size for c in classes)


def test_pr_curves_reject_bad_arguments() -> None:
    gt, dets, _ = random_eval_data(2)
    with pytest.raises(ValueError):
        precision_recall_curves(gt, dets, [1], protocol="2018")
    with pytest.raises(ValueError):
        precision_recall_curves(gt, dets, [])
