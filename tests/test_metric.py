"""FrameMAP torchmetrics wrapper: equals frame_map on the expanded table; DDP padding copies are dropped once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.evaluation.frame_map import frame_map
from seal_transfer.evaluation.metric import FrameMAP, deduplicate, top_k_flat

CLASSES = [1, 2, 4]

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:.*was called before the ..update:UserWarning")]


def make_world(seed=0, n_keyframes=12):
    rng = np.random.default_rng(seed)
    keys = [(f"v{i % 3}", float(902 + i)) for i in range(n_keyframes)]
    gt_rows = []
    for vid, ts in keys:
        for p in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 0.5, 2)
            box = np.round([x, y, x + 0.3, y + 0.4], 3)
            for c in rng.choice(CLASSES, size=rng.integers(1, 3), replace=False):
                gt_rows.append((vid, ts, box, int(c), p))
    gt = AvaTable.from_columns([r[0] for r in gt_rows], [r[1] for r in gt_rows], [r[2] for r in gt_rows],
                               [r[3] for r in gt_rows], [r[4] for r in gt_rows])
    # One "sample" per keyframe: a few predicted boxes with one score per class.
    samples = []
    for i, (vid, ts) in enumerate(keys):
        n = int(rng.integers(1, 5))
        base = gt.boxes[np.flatnonzero((gt.video_ids == vid) & (gt.timestamps == ts))[0]]
        boxes = np.clip(base + rng.normal(0, 0.05, (n, 4)), 0, 1).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
        scores = rng.random((n, len(CLASSES))).astype(np.float32)
        samples.append((i, boxes, scores))
    return gt, keys, samples


def expanded_table(keys, samples):
    """The detections the metric sees, as an AVA detection table (box-major, class-minor)."""
    vids, ts, boxes, actions, scores = [], [], [], [], []
    for i, b, s in samples:
        for r in range(b.shape[0]):
            for c, cid in enumerate(CLASSES):
                vids.append(keys[i][0])
                ts.append(keys[i][1])
                boxes.append(b[r])
                actions.append(cid)
                scores.append(s[r, c])
    return AvaTable.from_columns(vids, ts, boxes, actions, scores=scores)


def feed(metric, samples, with_index=True):
    ids = torch.tensor(np.concatenate([[i] * b.shape[0] for i, b, _ in samples]), dtype=torch.long)
    boxes = torch.from_numpy(np.concatenate([b for _, b, _ in samples]))
    scores = torch.from_numpy(np.concatenate([s for _, _, s in samples]))
    metric.update(ids, boxes, scores, ids.clone() if with_index else None)


@pytest.mark.parametrize("top_k", [50, 5])
def test_metric_equals_frame_map_on_the_expanded_table(top_k):
    gt, keys, samples = make_world()
    metric = FrameMAP(gt, CLASSES, keyframes=keys, top_k=top_k)
    feed(metric, samples[:5])
    feed(metric, samples[5:])
    value = metric.compute()
    expected = frame_map(gt, expanded_table(keys, samples), CLASSES, top_k=top_k)
    assert float(value) == pytest.approx(expected.mAP, abs=1e-12)
    assert metric.per_class_ap.keys() == expected.per_class.keys()
    for cid in CLASSES:
        assert metric.per_class_ap[cid] == pytest.approx(expected.per_class[cid], abs=1e-12)


def test_simulated_two_rank_gather_drops_sampler_padding_copies():
    gt, keys, samples = make_world(seed=3, n_keyframes=7)
    # DistributedSampler, 2 ranks, 7 samples: indices padded to 8 by repeating sample 0; rank r gets r::2.
    padded = list(range(7)) + [0]
    rank0, rank1 = padded[0::2], padded[1::2]  # rank 1 ends with the copy of sample 0
    metric0 = FrameMAP(gt, CLASSES, keyframes=keys)
    metric1 = FrameMAP(gt, CLASSES, keyframes=keys)
    for rank_metric, indices in ((metric0, rank0), (metric1, rank1)):
        for idx in indices:
            feed(rank_metric, [samples[idx]])
    gathered = FrameMAP(gt, CLASSES, keyframes=keys)
    for name in ("keyframe_ids", "boxes", "scores", "sample_index", "box_ordinal"):  # what sync's "cat" produces
        setattr(gathered, name, torch.cat(getattr(metric0, name) + getattr(metric1, name)))
    value = gathered.compute()
    expected = frame_map(gt, expanded_table(keys, samples), CLASSES)
    assert float(value) == pytest.approx(expected.mAP, abs=1e-12)
    assert gathered.result.num_detections == expanded_table(keys, samples).video_ids.size

    # What was scored, gathered once per sample in sample order: the same as one rank feeding 0..6 in order.
    single = FrameMAP(gt, CLASSES, keyframes=keys)
    feed(single, samples)
    assert float(single.compute()) == float(value)
    for field in ("sample_index", "keyframe_ids", "boxes", "scores"):
        np.testing.assert_array_equal(getattr(gathered.predictions, field), getattr(single.predictions, field))
    assert gathered.predictions.sample_index.tolist() == sorted(gathered.predictions.sample_index.tolist())

    # Without sample indices the padded copy is counted twice, and the number changes.
    naive = FrameMAP(gt, CLASSES, keyframes=keys)
    for idx in rank0 + rank1:
        feed(naive, [samples[idx]], with_index=False)
    doubled = naive.compute()
    assert naive.result.num_detections > gathered.result.num_detections
    assert not math.isclose(float(doubled), expected.mAP, abs_tol=1e-12)


def test_registry_and_input_validation():
    gt, keys, samples = make_world()
    metric = FrameMAP(gt, CLASSES)  # registry from the GT's keyframes
    assert metric.keyframe_id(*keys[1]) == keys.index(keys[1])
    assert metric.keyframe_id_tensor(keys[:2]).tolist() == [0, 1]
    with pytest.raises(KeyError, match="not in the FrameMAP registry"):
        metric.keyframe_id("nope", 1.0)
    with pytest.raises(ValueError, match="scores must have shape"):
        metric.update(torch.tensor([0]), torch.zeros(1, 4), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="registry"):
        metric.update(torch.tensor([999]), torch.zeros(1, 4), torch.zeros(1, 3))
    assert float(FrameMAP(gt, CLASSES).compute()) == 0.0  # nothing seen: every class with GT scores 0


def test_reset_clears_state():
    gt, keys, samples = make_world()
    metric = FrameMAP(gt, CLASSES, keyframes=keys)
    feed(metric, samples)
    first = float(metric.compute())
    metric.reset()
    feed(metric, samples)
    assert float(metric.compute()) == first


def test_top_k_flat_matches_brute_force_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(20):
        keys = rng.integers(0, 5, 30)
        scores = (rng.integers(0, 4, (30, 7)) / 4).astype(np.float32)  # many ties
        flat, flat_keys = scores.reshape(-1), np.repeat(keys, 7)
        expected = []
        for k in np.unique(flat_keys):
            idx = np.flatnonzero(flat_keys == k)
            expected += idx[np.argsort(-flat[idx], kind="stable")][:6].tolist()
        assert top_k_flat(keys, scores, 6).tolist() == sorted(expected)


def test_helpers():
    keep = deduplicate(np.array([3, 3, 5, 3, 3, -1, -1]), np.array([0, 1, 0, 0, 1, 0, 0]))
    assert keep.tolist() == [0, 1, 2, 5, 6]
    # Tagged rows come out in (sample, ordinal) order whatever order the ranks delivered them in.
    assert deduplicate(np.array([5, -1, 3, 3, 5]), np.array([0, 0, 0, 1, 0])).tolist() == [2, 3, 0, 1]
    keys = np.array([0, 0, 1])
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.3]], dtype=np.float32)
    assert top_k_flat(keys, scores, 2).tolist() == [1, 2, 4, 5]
    assert top_k_flat(keys, scores, 0).tolist() == list(range(6))
