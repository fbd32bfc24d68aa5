"""frame_map against a literal per-image port of the official AVA evaluator, hand-computed cases, protocol rules."""

from __future__ import annotations

import heapq
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from seal_transfer.data.formats.ava import AvaTable, read_ava_csv, read_labelmap
from seal_transfer.evaluation.frame_map import (
    descending_order,
    descending_rank,
    exact_float64,
    factorize_strings,
    frame_map,
    keyframe_codes,
    voc_average_precision,
    voc_average_precision_at,
)

FIXTURES = Path("/work/shared/data/fixtures/mmaction2")
pytestmark = pytest.mark.filterwarnings("ignore:.*outside the label map:RuntimeWarning")

# ------------------------------------------------------------------------------------------ reference


def reference_frame_map(gt_rows, det_rows, class_ids, excluded=(), negatives=(), protocol="2020", capacity=50,
                        iou_threshold=0.5):
    """The official algorithm written out per image, per class, per detection (slow on purpose).

    Raises ValueError where the official code does: a GT box with x2 < x1 or y2 < y1 on an image and class that
    has a valid detection (np_box_list.BoxList refuses it). Rows are tuples of strings as the official csv.reader
    sees them. Keys: (video, timestamp to 6 decimals).
    Score ties: stable sort (earlier first), the rule frame_map documents; with distinct scores it is the
    official order.
    """
    whitelist = set(class_ids)

    def key(video, ts):
        return video, round(float(ts), 6)

    def read(rows, cap):
        entries, all_keys = defaultdict(list), set()
        for row in rows:
            k = key(row[0], row[1])
            all_keys.add(k)
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            action = int(row[6])
            if action not in whitelist:
                continue
            score = float(row[7]) if len(row) == 8 else 1.0
            if cap < 1 or len(entries[k]) < cap:
                heapq.heappush(entries[k], (score, action, y1, x1, y2, x2))
            elif score > entries[k][0][0]:
                heapq.heapreplace(entries[k], (score, action, y1, x1, y2, x2))
        out = {}
        for k, items in entries.items():
            items = sorted(items, key=lambda t: -t[0])
            out[k] = (np.array([t[2:] for t in items], dtype=float).reshape(-1, 4),
                      np.array([t[1] for t in items], dtype=int), np.array([t[0] for t in items], dtype=float))
        return out, all_keys

    excluded = {key(v, t) for v, t in excluded}
    gt, gt_keys = read([(r[0], r[1], *r[2:7]) for r in gt_rows], 0)
    det, _ = read(det_rows, capacity)
    included = gt_keys | {key(v, t) for v, t in negatives}
    gt_images = {k: v for k, v in gt.items() if k not in excluded}
    num_gt = defaultdict(int)
    for _, labels, _ in gt_images.values():
        for c in labels:
            num_gt[int(c)] += 1
    scores_per_class, tp_per_class = defaultdict(list), defaultdict(list)
    for k, (boxes, labels, scores) in det.items():
        if k in excluded or (protocol == "2020" and k not in included):
            continue
        g_boxes, g_labels, _ = gt_images.get(k, (np.zeros((0, 4)), np.zeros(0, int), None))
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        boxes, labels, scores = boxes[valid], labels[valid], scores[valid]
        for c in class_ids:
            d_boxes, d_scores, gb = boxes[labels == c], scores[labels == c], g_boxes[g_labels == c]
            if d_boxes.shape[0] == 0:
                continue
            if ((gb[:, 0] > gb[:, 2]) | (gb[:, 1] > gb[:, 3])).any():  # np_box_list.BoxList(groundtruth_boxes)
                raise ValueError("Invalid box data. data must be a numpy array of N*[y_min, x_min, y_max, x_max]")
            tp = np.zeros(d_boxes.shape[0], dtype=bool)
            if gb.shape[0]:
                taken = np.zeros(gb.shape[0], dtype=bool)
                for i in range(d_boxes.shape[0]):
                    ious = []
                    for g in gb:  # [y1, x1, y2, x2], official np_box_ops.iou arithmetic
                        ih = max(0.0, min(d_boxes[i, 2], g[2]) - max(d_boxes[i, 0], g[0]))
                        iw = max(0.0, min(d_boxes[i, 3], g[3]) - max(d_boxes[i, 1], g[1]))
                        inter = ih * iw
                        a1 = (d_boxes[i, 2] - d_boxes[i, 0]) * (d_boxes[i, 3] - d_boxes[i, 1])
                        a2 = (g[2] - g[0]) * (g[3] - g[1])
                        ious.append(inter / (a1 + a2 - inter))
                    j = int(np.argmax(ious))
                    if ious[j] >= iou_threshold and not taken[j]:
                        tp[i] = taken[j] = True
            scores_per_class[c].append(d_scores)
            tp_per_class[c].append(tp)
    per_class = {}
    for c in class_ids:
        if num_gt[c] == 0:
            per_class[c] = math.nan
            continue
        if not scores_per_class[c]:
            per_class[c] = 0.0
            continue
        s, t = np.concatenate(scores_per_class[c]), np.concatenate(tp_per_class[c])
        order = np.argsort(-s, kind="stable")
        t = t[order].astype(int)
        ctp, cfp = np.cumsum(t), np.cumsum(1 - t)
        precision = np.concatenate([[0], ctp / (ctp + cfp), [0]])
        recall = np.concatenate([[0], ctp / num_gt[c], [1]])
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        idx = np.where(recall[1:] != recall[:-1])[0] + 1
        per_class[c] = float(np.sum((recall[idx] - recall[idx - 1]) * precision[idx]))
    values = np.array(list(per_class.values()))
    return (float(np.nanmean(values)) if not np.all(np.isnan(values)) else math.nan), per_class


# ------------------------------------------------------------------------------------------ helpers


def table(rows, kind):
    """AvaTable from string rows the way the reader stores them (float32 boxes and scores)."""
    if not rows:
        return AvaTable.empty()
    cols = list(zip(*rows))
    boxes = np.array([[float(v) for v in r[2:6]] for r in rows])
    extra = dict(person_ids=[int(v) for v in cols[7]]) if kind == "gt" else dict(scores=[float(v) for v in cols[7]])
    return AvaTable.from_columns(list(cols[0]), [float(v) for v in cols[1]], boxes,
                                 [int(v) for v in cols[6]], **extra)


def random_case(rng, n_videos=3, n_ts=6, n_classes=6, mean_persons=2.0, det_per_kf=12, decimals=3,
                degenerate=False):
    """Random GT and detection rows; `degenerate`: also inverted detections, zero-height GT boxes, and inverted GT
    boxes where the official code scores them (no detection of their class on their keyframe)."""
    classes = list(range(1, n_classes + 1))
    label_map = classes[:-1]  # the last class is outside the label map
    gt_rows, det_rows = [], []
    score_pool = rng.permutation(np.arange(1, 200000))[: 10000] / 200000.0
    s_i = 0
    for v in range(n_videos):
        vid = f"vid{v}"
        for t in range(902, 902 + n_ts):
            persons = rng.poisson(mean_persons) if rng.random() > 0.15 else 0
            p_boxes = []
            for p in range(persons):
                x1, y1 = rng.uniform(0, 0.6, 2)
                w, h = rng.uniform(0.1, 0.4, 2)
                box = np.round([x1, y1, min(x1 + w, 1), min(y1 + h, 1)], decimals)
                p_boxes.append(box)
                for a in rng.choice(classes, size=rng.integers(1, 4), replace=False):
                    gt_rows.append((vid, f"{t:04d}", *[f"{c:.{decimals}f}" for c in box], str(a), str(p)))
            for _ in range(rng.poisson(det_per_kf)):
                if p_boxes and rng.random() < 0.7:
                    base = p_boxes[rng.integers(len(p_boxes))] + rng.normal(0, 0.04, 4)
                else:
                    base = np.sort(rng.uniform(0, 1, 2)).tolist()
                    base = np.array([base[0], rng.uniform(0, 0.5), base[1], rng.uniform(0.5, 1)])
                box = np.clip(np.round(base, decimals), 0, 1)
                box[2], box[3] = max(box[2], box[0]), max(box[3], box[1])
                if rng.random() < 0.03:
                    box[2] = box[0]  # zero width: the official per-image step drops it
                if degenerate and rng.random() < 0.05:
                    box[[0, 2]] = box[[2, 0]]  # x2 < x1: dropped there too
                det_rows.append((vid, f"{t:04d}", *[f"{c:.{decimals}f}" for c in box],
                                 str(rng.choice(classes)), f"{score_pool[s_i]:.6f}"))
                s_i += 1
    order = rng.permutation(len(det_rows))
    det_rows = [det_rows[i] for i in order]
    if degenerate:
        detected = {(r[0], r[1], r[6]) for r in det_rows}
        for i, r in enumerate(gt_rows):
            u = rng.random()
            if u < 0.05:
                gt_rows[i] = (*r[:5], r[3], *r[6:])  # y2 = y1
            elif u < 0.15 and (r[0], r[1], r[6]) not in detected:
                gt_rows[i] = (r[0], r[1], r[4], r[3], r[2], *r[5:])  # x2 < x1
    return gt_rows, det_rows, label_map


# ------------------------------------------------------------------------------------------ known answers


def test_mmaction2_fixture_matches_official_known_answer():
    d = FIXTURES / "eval_detection"
    gt = read_ava_csv(d / "gt.csv", "gt")
    det = read_ava_csv(d / "pred.csv", "detections")
    labelmap = read_labelmap(d / "action_list.txt")
    for protocol in ("2020", "2019"):
        result = frame_map(gt, det, labelmap.ids, protocol=protocol)
        assert result.mAP == pytest.approx(0.0938552188, abs=1e-9)
        assert result.num_keyframes == 3 and result.num_gt_boxes == 12


def test_hand_computed_one_class_two_gt_three_detections():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0"), ("b", "0902", "0.5", "0.5", "0.9", "0.9", "1", "0")]
    det = [
        ("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.9"),  # TP
        ("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.8"),  # same GT again: FP
        ("b", "0902", "0.5", "0.5", "0.9", "0.9", "1", "0.7"),  # TP
    ]
    result = frame_map(table(gt, "gt"), table(det, "det"), [1])
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 → AP = 1/2 * 1 + 1/2 * 2/3
    assert result.per_class[1] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    assert result.num_true_positives_per_class[1] == 2


def test_detection_whose_best_gt_is_taken_is_a_false_positive():
    """Official quirk: match the argmax-IoU GT only; another free GT above threshold does not rescue it."""
    gt = [("a", "0902", "0.0", "0.0", "0.4", "0.4", "1", "0"), ("a", "0902", "0.05", "0.0", "0.45", "0.4", "1", "1")]
    det = [("a", "0902", "0.0", "0.0", "0.4", "0.4", "1", "0.9"),
           ("a", "0902", "0.02", "0.0", "0.42", "0.4", "1", "0.8")]  # IoU .905 with the taken GT, .86 with the free
    result = frame_map(table(gt, "gt"), table(det, "det"), [1])
    assert result.per_class[1] == pytest.approx(0.5)
    assert reference_frame_map(gt, det, [1])[1][1] == pytest.approx(0.5)


def test_iou_exactly_at_threshold_counts_like_official_float64():
    # IoU = 0.02 / 0.04: whether it lands on 0.5 depends on float64 arithmetic of the decimal text.
    gt = [("a", "0902", "0.1", "0.1", "0.3", "0.3", "1", "0")]
    for y2 in ("0.2", "0.199", "0.201"):
        det = [("a", "0902", "0.1", "0.1", "0.3", y2, "1", "0.9")]
        ours = frame_map(table(gt, "gt"), table(det, "det"), [1]).per_class[1]
        assert ours == reference_frame_map(gt, det, [1])[1][1]


# ------------------------------------------------------------------------------------------ protocol rules


def _rows():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0"),
          ("a", "0903", "0.1", "0.1", "0.5", "0.5", "2", "0"),  # only class 2 here: keyframe named in GT
          ("a", "0904", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    det = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.5"),
           ("a", "0903", "0.1", "0.1", "0.5", "0.5", "1", "0.9"),  # GT keyframe without class-1 GT: FP in both
           ("a", "0905", "0.1", "0.1", "0.5", "0.5", "1", "0.8"),  # keyframe absent from GT
           ("a", "0904", "0.1", "0.1", "0.5", "0.5", "1", "0.4"),
           ("a", "0902", "0.1", "0.1", "0.5", "0.5", "7", "0.99")]  # class outside the label map
    return gt, det


def test_protocol_2020_ignores_keyframes_without_gt_and_2019_counts_them():
    gt, det = _rows()
    r20 = frame_map(table(gt, "gt"), table(det, "det"), [1])
    r19 = frame_map(table(gt, "gt"), table(det, "det"), [1], protocol="2019")
    # 2020: ranking .9 FP, .5 TP, .4 TP → precision 0, 1/2, 2/3; envelope 2/3 at both TPs → AP = 2/3
    assert r20.per_class[1] == pytest.approx(2 / 3)
    assert r20.num_dropped_unscored == 1 and r20.num_ignored_class == 1
    # 2019: .9 FP, .8 FP, .5 TP, .4 TP → precision 1/3, 1/2 at the TPs; envelope 1/2 at both → AP = 1/2
    assert r19.per_class[1] == pytest.approx(0.5)
    assert r19.num_dropped_unscored == 0
    for protocol, result in (("2020", r20), ("2019", r19)):
        assert reference_frame_map(gt, det, [1], protocol=protocol)[0] == pytest.approx(result.mAP, abs=1e-12)


def test_exclusions_drop_gt_and_detections():
    gt, det = _rows()
    result = frame_map(table(gt, "gt"), table(det, "det"), [1], exclusions={("a", 902.0)})
    ref = reference_frame_map(gt, det, [1], excluded={("a", 902.0)})
    assert result.mAP == pytest.approx(ref[0], abs=1e-12)
    assert result.num_gt_per_class[1] == 1 and result.num_dropped_excluded == 1  # class 7 counts as ignored
    assert result.num_excluded_keyframes == 1


def test_negative_keyframes_are_scored_in_2020():
    gt, det = _rows()
    plain = frame_map(table(gt, "gt"), table(det, "det"), [1])
    with_negative = frame_map(table(gt, "gt"), table(det, "det"), [1], negative_keyframes=[("a", 905.0)])
    assert with_negative.per_class[1] < plain.per_class[1]
    assert with_negative.num_keyframes == plain.num_keyframes + 1
    ref = reference_frame_map(gt, det, [1], negatives=[("a", 905.0)])
    assert with_negative.mAP == pytest.approx(ref[0], abs=1e-12)


def test_top_k_keeps_the_best_detections_per_keyframe_across_classes():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    det = [("a", "0902", "0.6", "0.6", "0.9", "0.9", "2", f"{0.9 - i / 100:.2f}") for i in range(5)]
    det.append(("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.10"))  # the only TP, ranked 6th
    full = frame_map(table(gt, "gt"), table(det, "det"), [1, 2], top_k=0)
    capped = frame_map(table(gt, "gt"), table(det, "det"), [1, 2], top_k=5)
    assert full.per_class[1] == 1.0 and capped.per_class[1] == 0.0
    assert capped.num_dropped_top_k == 1
    assert reference_frame_map(gt, det, [1, 2], capacity=5)[1][1] == 0.0


def test_class_without_detections_scores_zero_and_class_without_gt_is_nan():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0"), ("a", "0902", "0.1", "0.1", "0.5", "0.5", "2", "0")]
    det = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.9"), ("a", "0902", "0.1", "0.1", "0.5", "0.5", "3", "0.9")]
    result = frame_map(table(gt, "gt"), table(det, "det"), [1, 2, 3])
    assert result.per_class[1] == 1.0 and result.per_class[2] == 0.0 and math.isnan(result.per_class[3])
    assert result.mAP == pytest.approx(0.5)  # class 3 (no GT) left out of the mean
    assert result.to_json()["per_class"]["3"] is None


def test_empty_detections_give_zero_with_a_warning():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    with pytest.warns(RuntimeWarning, match="no detections"):
        result = frame_map(table(gt, "gt"), AvaTable.empty(), [1])
    assert result.mAP == 0.0 and result.warnings


def test_invalid_detection_boxes_are_dropped_after_the_top_k_cut():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    det = [("a", "0902", "0.3", "0.1", "0.3", "0.5", "1", "0.9"),  # zero width: takes a top-k slot, then dropped
           ("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.8")]
    result = frame_map(table(gt, "gt"), table(det, "det"), [1], top_k=1)
    assert result.per_class[1] == 0.0 and result.num_dropped_invalid_box == 1 and result.num_dropped_top_k == 1
    assert reference_frame_map(gt, det, [1], capacity=1)[1][1] == 0.0


def test_inverted_detection_boxes_are_dropped_not_scored_as_false_positives():
    """The official per-image step removes detections with y2 <= y1 or x2 <= x1 before matching, so they are
    neither true nor false positives (as a false positive this class would score 1/2)."""
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    det = [("a", "0902", "0.427", "0.373", "0.601", "0.3729", "1", "0.9"),  # y2 < y1 by 1e-4 (rounding)
           ("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.8"),  # TP
           ("a", "0902", "0.6", "0.6", "0.9", "0.9", "1", "0.7")]  # FP
    result = frame_map(table(gt, "gt"), table(det, "det"), [1])
    assert result.per_class[1] == 1.0 and reference_frame_map(gt, det, [1])[1][1] == 1.0
    assert result.num_dropped_invalid_box == 1 and result.num_detections_evaluated == 2
    assert result.num_detections_per_class[1] == 2 and result.num_true_positives_per_class[1] == 1


def test_degenerate_gt_boxes_count_and_are_never_matched():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0"),
          ("a", "0902", "0.5", "0.5", "0.5", "0.8", "1", "1"),  # zero width
          ("b", "0902", "0.6", "0.1", "0.2", "0.5", "1", "0"),  # x2 < x1, no class-1 detection on b
          ("b", "0902", "0.1", "0.1", "0.5", "0.5", "2", "0")]
    det = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.9"),  # TP
           ("a", "0902", "0.5", "0.5", "0.6", "0.8", "1", "0.8"),  # touches the zero-width GT only: IoU 0, FP
           ("b", "0902", "0.1", "0.1", "0.5", "0.5", "2", "0.7")]  # TP of class 2
    result = frame_map(table(gt, "gt"), table(det, "det"), [1, 2])
    # class 1: 3 GT rows, ranking TP, FP → precision 1 at recall 1/3 → AP 1/3; class 2: AP 1
    assert result.per_class[1] == pytest.approx(1 / 3, abs=1e-15) and result.per_class[2] == 1.0
    assert result.num_gt_per_class[1] == 3 and result.num_degenerate_gt_boxes == 2 and not result.warnings
    expected_map, expected = reference_frame_map(gt, det, [1, 2])
    assert expected[1] == result.per_class[1] and expected_map == result.mAP


def test_inverted_gt_box_next_to_a_detection_is_never_matched_where_the_official_code_stops():
    """The official code raises ValueError (np_box_list.BoxList) for an inverted GT box on an image and class
    with a detection, so there is no official number; here such a box counts and is never matched, and a
    warning says so. The case below also has IoU 0 / 0 (the areas cancel), which np.argmax would pick."""
    gt = [("a", "0902", "0.75", "0.5", "0.5", "0.75", "1", "0"),  # area (-0.25) * 0.25 = -0.0625
          ("a", "0902", "0.25", "0.25", "0.5", "0.5", "1", "1")]
    det = [("a", "0902", "0.25", "0.25", "0.5", "0.5", "1", "0.9")]  # area 0.0625
    with pytest.raises(ValueError, match="Invalid box data"):
        reference_frame_map(gt, det, [1])
    with pytest.warns(RuntimeWarning, match="the official code stops there"):
        result = frame_map(table(gt, "gt"), table(det, "det"), [1])
    assert result.per_class[1] == 0.5  # TP on the valid GT; 2 GT rows
    assert result.num_degenerate_gt_boxes == 1
    assert result.warnings == [
        "1 ground-truth boxes with x2 < x1 or y2 < y1 share a keyframe and class with a scored detection: the "
        "official code stops there (ValueError: Invalid box data); here they count as ground truth and are never "
        "matched"
    ]


def test_score_ties_are_broken_by_input_order():
    gt = [("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0")]
    fp = ("a", "0902", "0.6", "0.6", "0.9", "0.9", "1", "0.5")
    tp = ("a", "0902", "0.1", "0.1", "0.5", "0.5", "1", "0.5")
    assert frame_map(table(gt, "gt"), table([tp, fp], "det"), [1]).per_class[1] == 1.0
    assert frame_map(table(gt, "gt"), table([fp, tp], "det"), [1]).per_class[1] == 0.5


# ------------------------------------------------------------------------------------------ randomised equivalence


@pytest.mark.parametrize("seed", range(40))
def test_random_inputs_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    gt_rows, det_rows, label_map = random_case(rng, decimals=3 if seed % 2 else 2)
    keys = sorted({(r[0], float(r[1])) for r in gt_rows + det_rows})
    excluded = {keys[i] for i in rng.choice(len(keys), size=min(2, len(keys)), replace=False)} if seed % 3 else set()
    top_k = [50, 4, 7, 0][seed % 4]
    for protocol in ("2020", "2019"):
        expected_map, expected = reference_frame_map(gt_rows, det_rows, label_map, excluded=excluded,
                                                     protocol=protocol, capacity=top_k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = frame_map(table(gt_rows, "gt"), table(det_rows, "det"), label_map, exclusions=excluded,
                               protocol=protocol, top_k=top_k)
        for cid in label_map:
            if math.isnan(expected[cid]):
                assert math.isnan(result.per_class[cid])
            else:
                assert result.per_class[cid] == pytest.approx(expected[cid], abs=1e-12), (protocol, cid)
        if math.isnan(expected_map):
            assert math.isnan(result.mAP)
        else:
            assert result.mAP == pytest.approx(expected_map, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_random_inputs_with_degenerate_boxes_match_the_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    gt_rows, det_rows, label_map = random_case(rng, decimals=3, degenerate=True)
    top_k = [50, 5, 0][seed % 3]
    for protocol in ("2020", "2019"):
        expected_map, expected = reference_frame_map(gt_rows, det_rows, label_map, protocol=protocol, capacity=top_k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = frame_map(table(gt_rows, "gt"), table(det_rows, "det"), label_map, protocol=protocol,
                               top_k=top_k)
        assert not result.warnings or "outside the label map" in result.warnings[-1]
        for cid in label_map:
            assert result.per_class[cid] == pytest.approx(expected[cid], abs=1e-12, nan_ok=True), (protocol, cid)
        assert result.mAP == pytest.approx(expected_map, abs=1e-12, nan_ok=True)


def test_crowded_keyframes_match_the_reference():
    """Many boxes of one class per keyframe: exercises the GT-slot loop and the top-k heap."""
    rng = np.random.default_rng(123)
    gt_rows, det_rows, label_map = random_case(rng, n_videos=2, n_ts=3, n_classes=3, mean_persons=9, det_per_kf=80)
    for protocol in ("2020", "2019"):
        expected_map, _ = reference_frame_map(gt_rows, det_rows, label_map, protocol=protocol)
        result = frame_map(table(gt_rows, "gt"), table(det_rows, "det"), label_map, protocol=protocol)
        assert result.mAP == pytest.approx(expected_map, abs=1e-12)
        assert result.num_dropped_top_k > 0


# ------------------------------------------------------------------------------------------ helpers' contracts


def test_exact_float64_recovers_decimal_text():
    text = ["0.1", "0.3", "0.123456", "1.0", "0.999", "0.000001"]
    recovered = exact_float64(np.asarray([float(t) for t in text], dtype=np.float32))
    assert recovered.tolist() == [float(t) for t in text]


def test_keyframe_codes_share_ids_across_tables_and_round_to_microseconds():
    (a, b), n = keyframe_codes([np.array(["x", "y", "x"]), np.array(["x", "y"])],
                               [np.array([902.0, 902.0, 903.0]), np.array([903.0000001, 902.0])])
    assert n == 3 and a[2] == b[0] and a[1] == b[1] and a[0] != a[2]
    codes, uniques = factorize_strings(np.array(["b", "b", "a", "b"]))
    assert uniques[codes].tolist() == ["b", "b", "a", "b"]


def test_descending_rank_is_stable_for_ties():
    assert descending_rank(np.array([0.5, 0.9, 0.5, 0.1], dtype=np.float32)).tolist() == [1, 0, 2, 3]
    assert descending_rank(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [1, 0, 2, 3]


def test_voc_average_precision_at_is_the_full_curve_bit_for_bit():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(0, 60))
        tp = rng.random(n) < rng.random()
        num_gt = int(tp.sum() + rng.integers(0, 4))
        full = voc_average_precision(tp, num_gt)
        at = voc_average_precision_at(np.flatnonzero(tp), n, num_gt)
        assert (full == at) or (math.isnan(full) and math.isnan(at))
    big = rng.random(5000) < 0.3  # long enough for pairwise summation blocks
    assert voc_average_precision(big, 2000) == voc_average_precision_at(np.flatnonzero(big), big.size, 2000)


def test_descending_order_is_a_stable_descending_argsort():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(10000), 2).astype(np.float32)  # many ties
    scores[::7] = -scores[::7]
    expected = np.argsort(-scores.astype(np.float64), kind="stable")
    np.testing.assert_array_equal(descending_order(scores), expected)
    np.testing.assert_array_equal(descending_order(scores.astype(np.float64)), expected)


def test_keyframe_codes_take_ready_factorisations():
    videos = [np.array(["y", "y", "x", "z"]), np.array(["z", "x"])]
    times = [np.array([1.0, 2.0, 1.0, 1.0]), np.array([1.0, 1.0])]
    plain, n = keyframe_codes(videos, times)
    vocab = np.array(["z", "y", "x"])  # any order, as the CSV reader's dictionary
    coded, m = keyframe_codes([None, videos[1]], times, [(np.array([1, 1, 2, 0]), vocab), None])
    assert n == m == 4 and all(np.array_equal(a, b) for a, b in zip(plain, coded))


def test_voc_average_precision_edge_cases():
    assert math.isnan(voc_average_precision(np.array([True]), 0))
    assert voc_average_precision(np.array([], dtype=bool), 3) == 0.0
    assert voc_average_precision(np.array([True, False, True]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
