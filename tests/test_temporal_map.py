"""Temporal detection mAP against a literal port of ActivityNet `compute_average_precision_detection`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seal_transfer.data.formats.activitynet import (
    TadSegments,
    align_video_ids,
    read_activitynet_gt,
    read_activitynet_predictions,
)
from seal_transfer.evaluation.temporal_map import (
    DEFAULT_TIOU_THRESHOLDS,
    average_map,
    average_map_per_tube,
    tube_keys,
)

FIXTURES = Path("/work/shared/data/fixtures/mmaction2/eval_localization")


def reference_average_map(gt, pred, thresholds=DEFAULT_TIOU_THRESHOLDS):
    """Per class, per prediction, per threshold, as eval_detection.py does (stable score sort, first GT on ties)."""
    classes = list(dict.fromkeys(gt["label"]))
    ap = np.zeros((len(thresholds), len(classes)))
    for c, name in enumerate(classes):
        g = [i for i, lb in enumerate(gt["label"]) if lb == name]
        p = [i for i, lb in enumerate(pred["label"]) if lb == name]
        if not p:
            continue
        p = [p[i] for i in np.argsort(-np.asarray([pred["score"][i] for i in p]), kind="stable")]
        lock = -np.ones((len(thresholds), len(g)))
        tp = np.zeros((len(thresholds), len(p)))
        fp = np.zeros((len(thresholds), len(p)))
        for idx, pi in enumerate(p):
            same = [j for j, gi in enumerate(g) if gt["video"][gi] == pred["video"][pi]]
            if not same:
                fp[:, idx] = 1
                continue
            s, e = pred["start"][pi], pred["end"][pi]
            cs = np.asarray([gt["start"][g[j]] for j in same])
            ce = np.asarray([gt["end"][g[j]] for j in same])
            inter = (np.minimum(e, ce) - np.maximum(s, cs)).clip(0)
            with np.errstate(invalid="ignore"):
                tiou = inter / ((ce - cs) + (e - s) - inter)
            # official: tiou.argsort()[::-1] puts a NaN (0 / 0) first; ties here: the GT listed first
            order = np.argsort(-np.where(np.isnan(tiou), np.inf, tiou), kind="stable")
            for t, thr in enumerate(thresholds):
                for jdx in order:
                    if tiou[jdx] < thr:
                        fp[t, idx] = 1
                        break
                    if lock[t, same[jdx]] >= 0:
                        continue
                    tp[t, idx] = 1
                    lock[t, same[jdx]] = idx
                    break
                if fp[t, idx] == 0 and tp[t, idx] == 0:
                    fp[t, idx] = 1
        tpc, fpc = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
        rec, prec = tpc / len(g), tpc / (tpc + fpc)
        for t in range(len(thresholds)):
            mprec = np.hstack([[0], prec[t], [0]])
            mrec = np.hstack([[0], rec[t], [1]])
            for i in range(len(mprec) - 1)[::-1]:
                mprec[i] = max(mprec[i], mprec[i + 1])
            idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
            ap[t, c] = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return ap.mean(axis=1).mean(), ap


def to_segments(d, scores=True):
    return TadSegments.from_columns(d["video"], d["start"], d["end"], d["label"], d["score"] if scores else None)


def random_case(rng, n_videos=6, n_classes=4, preds_per_video=25, degenerate=False):
    """`degenerate`: some segments end before they start or have no length (GT and predictions), and some
    predictions have the negated length of a GT segment of their video, so that their tIoU is 0 / 0."""
    gt = {"video": [], "start": [], "end": [], "label": [], "score": []}
    pred = {"video": [], "start": [], "end": [], "label": [], "score": []}
    scores = iter(rng.permutation(100000)[:5000] / 100000.0)
    for v in range(n_videos):
        dur = rng.uniform(30, 120)
        for _ in range(rng.integers(0, 5)):
            c = rng.uniform(0, dur)
            length = rng.uniform(2, dur / 2)
            gt["video"].append(f"v{v}")
            gt["start"].append(round(max(0.0, c - length / 2), 2))
            gt["end"].append(round(min(dur, c + length / 2), 2))
            gt["label"].append(f"class{rng.integers(n_classes)}")
            gt["score"].append(1.0)
        for _ in range(preds_per_video):
            if gt["video"] and rng.random() < 0.6:
                j = rng.integers(len(gt["video"]))
                s, e = gt["start"][j] + rng.normal(0, 3), gt["end"][j] + rng.normal(0, 3)
                video = gt["video"][j] if rng.random() < 0.9 else f"v{v}"
            else:
                s, e = np.sort(rng.uniform(0, dur, 2))
                video = f"v{v}" if rng.random() < 0.9 else "unseen"
            s, e = round(float(min(s, e)), 2), round(float(max(s, e)), 2)
            if degenerate:
                u = rng.random()
                if u < 0.1:
                    s, e = e, s
                elif u < 0.15:
                    e = s
                elif u < 0.25 and gt["video"]:
                    j = rng.integers(len(gt["video"]))  # length minus GT j's: tIoU 0 / 0 with it
                    video, e = gt["video"][j], round(s + gt["start"][j] - gt["end"][j], 2)
            pred["video"].append(video)
            pred["start"].append(s)
            pred["end"].append(e)
            pred["label"].append(f"class{rng.integers(n_classes + 1)}")  # class{n_classes}: not in GT
            pred["score"].append(float(next(scores)))
    if degenerate:
        for j in range(len(gt["video"])):
            u = rng.random()
            if u < 0.15:
                gt["start"][j], gt["end"][j] = gt["end"][j], gt["start"][j]
            elif u < 0.2:
                gt["end"][j] = gt["start"][j]
    return gt, pred


def test_mmaction2_fixture_matches_official_known_answer():
    gt, videos = read_activitynet_gt(FIXTURES / "gt.json", "validation")
    predictions = read_activitynet_predictions(FIXTURES / "result.json")
    gt, videos, note = align_video_ids(gt, videos, predictions)
    assert note is not None and "v_" in note
    result = average_map(gt, predictions)
    assert result.average_mAP == pytest.approx(0.617758, abs=1e-6)
    assert len(result.mAP_at) == 10 and result.class_names == ["Wakeboarding", "Cleaning shoes"]


def test_hand_computed_case():
    gt = TadSegments.from_columns(["a", "a"], [0.0, 10.0], [10.0, 20.0], ["x", "x"])
    pred = TadSegments.from_columns(["a", "a", "a"], [0.0, 0.0, 10.0], [10.0, 10.0, 16.0], ["x", "x", "x"],
                                    [0.9, 0.8, 0.7])
    result = average_map(gt, pred, [0.5, 0.7])
    # t=0.5: TP, FP, TP (tIoU .6) → AP = 1/2 + 1/2 * 2/3; t=0.7: TP, FP, FP → AP = 1/2
    assert result.mAP_at[0.5] == pytest.approx(0.5 + 1 / 3)
    assert result.mAP_at[0.7] == pytest.approx(0.5)
    assert result.average_mAP == pytest.approx((0.5 + 1 / 3 + 0.5) / 2)


def test_prediction_falls_back_to_next_best_free_gt():
    gt = TadSegments.from_columns(["a", "a"], [0.0, 1.0], [10.0, 11.0], ["x", "x"])
    pred = TadSegments.from_columns(["a", "a"], [0.0, 0.5], [10.0, 10.5], ["x", "x"], [0.9, 0.8])
    assert average_map(gt, pred, [0.5]).average_mAP == 1.0  # the second takes the other GT


def test_class_without_predictions_scores_zero_and_unknown_labels_are_counted():
    gt = TadSegments.from_columns(["a", "a"], [0.0, 0.0], [10.0, 10.0], ["x", "y"])
    pred = TadSegments.from_columns(["a", "a"], [0.0, 0.0], [10.0, 10.0], ["x", "z"], [0.9, 0.8])
    result = average_map(gt, pred)
    assert result.per_class() == {"x": 1.0, "y": 0.0}
    assert result.average_mAP == 0.5 and result.num_ignored_label == 1


def test_zero_length_segments_follow_numpy_nan_behaviour():
    # 0/0 tIoU is NaN: the official loop sorts it first and `NaN < thr` is False, so it matches.
    gt = TadSegments.from_columns(["a"], [5.0], [5.0], ["x"])
    pred = TadSegments.from_columns(["a"], [7.0], [7.0], ["x"], [0.9])
    assert average_map(gt, pred).average_mAP == 1.0
    ref_gt = {"video": ["a"], "start": [5.0], "end": [5.0], "label": ["x"], "score": [1.0]}
    ref_pred = {"video": ["a"], "start": [7.0], "end": [7.0], "label": ["x"], "score": [0.9]}
    with np.errstate(invalid="ignore"):
        assert reference_average_map(ref_gt, ref_pred)[0] == 1.0


def test_segments_ending_before_they_start_follow_the_official_arithmetic():
    """end < start: the intersection is clamped at 0, so the tIoU is 0 / (sum of the two lengths): 0 (or -0.0)
    in general, but NaN where the lengths cancel, which the official loop counts as a match (not 'IoU 0')."""
    gt = TadSegments.from_columns(["a", "a", "b"], [0.0, 20.0, 5.0], [10.0, 18.0, 5.0], ["x", "x", "x"])
    pred = TadSegments.from_columns(
        ["a", "a", "a", "b"], [30.0, 0.0, 10.0, 7.0], [25.0, 10.0, 12.0, 7.0], ["x", "x", "x", "x"],
        [0.95, 0.9, 0.8, 0.7],
    )
    # .95: [30, 25] vs both GT of a: tIoU 0 and -0.0 → FP; .9: TP on [0, 10]; .8: [10, 12] vs [20, 18]:
    # 0 / (2 - 2) = NaN → TP; .7: two zero-length segments, NaN → TP. Precision 1/2, 2/3, 3/4 at recall
    # 1/3, 2/3, 1 → envelope 3/4 → AP 3/4 at every threshold. With "tIoU 0" for the .8 prediction it would be 1/3.
    result = average_map(gt, pred)
    assert result.average_mAP == 0.75 and set(result.mAP_at.values()) == {0.75}
    to_dict = {"video": list(gt.video_ids), "start": list(gt.starts), "end": list(gt.ends), "label": ["x"] * 3}
    pred_dict = {"video": list(pred.video_ids), "start": list(pred.starts), "end": list(pred.ends),
                 "label": ["x"] * 4, "score": list(pred.scores)}
    assert reference_average_map(to_dict, pred_dict)[0] == 0.75


@pytest.mark.parametrize("seed, degenerate", [(500 + s, True) for s in range(15)] + [(s, False) for s in range(25)])
def test_random_inputs_match_the_reference(seed, degenerate):
    """Random GT and predictions (with `degenerate`: zero-length and inverted segments too) score as the official
    ActivityNet code scores them."""
    gt, pred = random_case(np.random.default_rng(seed), degenerate=degenerate)
    if not gt["video"]:
        pytest.skip("no GT drawn")
    expected, expected_ap = reference_average_map(gt, pred)
    result = average_map(to_segments(gt, scores=False), to_segments(pred))
    assert result.average_mAP == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(result.ap, expected_ap, atol=1e-12)


def test_per_tube_keys_separate_tubes_of_one_video():
    gt = TadSegments.from_columns(["a", "a"], [0.0, 0.0], [10.0, 10.0], ["x", "x"])
    pred = TadSegments.from_columns(["a", "a"], [0.0, 0.0], [10.0, 10.0], ["x", "x"], [0.9, 0.8])
    per_video = average_map(gt, pred, [0.5])
    per_tube = average_map_per_tube(gt, [1, 2], pred, [1, 3], [0.5])
    assert per_video.average_mAP == 1.0
    assert per_tube.average_mAP == 0.5  # the second prediction is on tube 3, which has no GT
    assert len(set(tube_keys(["a", "a"], [1, 2]).tolist())) == 2


def test_no_ground_truth_gives_nan():
    result = average_map(TadSegments.from_columns([], [], [], []), TadSegments.from_columns(["a"], [0], [1], ["x"]))
    assert np.isnan(result.average_mAP) and result.warnings
