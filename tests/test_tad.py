"""Temporal detector (models/tad.py): 1-D RoIAlign, soft-NMS, masking, loss, and that it learns a toy problem."""

from __future__ import annotations

import pytest
import torch

from seal_transfer.models.tad import (
    TadConfig,
    TemporalDetector,
    roi_align_1d,
    segment_iou_matrix,
    soft_nms,
)

SMALL = TadConfig(hidden=16, levels=3, head_layers=1, embed_layers=1, roi_bins=4, context_bins=1, num_proposals=20)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_segment_iou_matrix():
    a = torch.tensor([[0.0, 10.0], [5.0, 6.0]])
    b = torch.tensor([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0]])
    iou = segment_iou_matrix(a, b)
    expected = torch.tensor([[1.0, 5 / 15, 0.0], [0.1, 0.1, 0.0]])
    assert torch.allclose(iou, expected)


def test_roi_align_1d_matches_torchvision():
    from torchvision.ops import roi_align

    torch.manual_seed(0)
    fmap = torch.randn(2, 3, 12)
    rois = torch.tensor([[0, 1.3, 7.9], [1, 0.0, 12.0], [1, 4.2, 5.1], [0, -0.6, 2.0]])
    ours = roi_align_1d(fmap, rois[:, 0].long(), rois[:, 1], rois[:, 2], bins=4, samples=2)
    boxes = torch.stack([rois[:, 0], rois[:, 1], torch.zeros(4), rois[:, 2], torch.ones(4)], 1)
    theirs = roi_align(fmap.unsqueeze(2), boxes, output_size=(1, 4), spatial_scale=1.0, sampling_ratio=2,
                       aligned=True).squeeze(2)
    # torchvision samples 2 rows too; on a 1-pixel-high map both rows read the same values.
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_soft_nms_decays_overlaps_per_class():
    segments = torch.tensor([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]])
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]])
    out = soft_nms(segments, scores, sigma=0.5, keep=3)
    assert out[0, 0] == pytest.approx(0.9)
    assert out[0, 1] < 0.8 * 0.3  # tIoU 0.9 with the kept top segment: strongly decayed
    assert out[0, 2] == pytest.approx(0.7)  # no overlap: untouched
    assert out[1, 2] == pytest.approx(0.3)  # classes are independent


def test_padding_does_not_change_detections():
    torch.manual_seed(0)
    model = TemporalDetector(5, 3, multilabel=True, cfg=SMALL).eval()
    x = torch.randn(1, 5, 16)
    alone = model.detect(x, torch.ones(1, 16, dtype=torch.bool))[0]
    padded_x = torch.cat([x, 100 * torch.randn(1, 5, 16)], dim=2)  # garbage after the end
    mask = torch.zeros(1, 32, dtype=torch.bool)
    mask[:, :16] = True
    padded = model.detect(padded_x, mask)[0]
    assert len(alone.scores) > 0
    assert torch.allclose(alone.segments, padded.segments, atol=1e-5)
    assert torch.equal(alone.labels, padded.labels)
    assert float(padded.segments.max()) <= 16.0 + 1e-5


@pytest.mark.parametrize("multilabel", [True, False])
def test_learns_a_toy_sequence(multilabel):
    """One channel lights up inside the segment of its class: after a short fit the top detection finds it."""
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 4, 32)
    x[0, 1, 8:20] += 2.0
    x[1, 2, 3:11] += 2.0
    targets = [{"segments": torch.tensor([[8.0, 20.0]]), "labels": torch.tensor([1])},
               {"segments": torch.tensor([[3.0, 11.0]]), "labels": torch.tensor([2])}]
    mask = torch.ones(2, 32, dtype=torch.bool)
    model = TemporalDetector(4, 3, multilabel=multilabel, cfg=SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    first = None
    for _ in range(80):
        losses = model.loss(x, mask, targets)
        first = first if first is not None else float(losses["loss"])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert float(losses["loss"]) < 0.5 * first
    model.eval()
    detections = model.detect(x, mask)
    for det, tgt in zip(detections, targets):
        assert int(det.labels[0]) == int(tgt["labels"][0])
        assert float(segment_iou_matrix(det.segments[:1], tgt["segments"])[0, 0]) > 0.5
        assert torch.all(det.scores[:-1] >= det.scores[1:])  # best first


def test_loss_handles_a_tube_without_segments():
    model = TemporalDetector(3, 2, multilabel=False, cfg=SMALL)
    x = torch.randn(2, 3, 8)
    targets = [{"segments": torch.zeros(0, 2), "labels": torch.zeros(0, dtype=torch.long)},
               {"segments": torch.tensor([[1.0, 5.0]]), "labels": torch.tensor([0])}]
    losses = model.loss(x, torch.ones(2, 8, dtype=torch.bool), targets)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.cls_out.weight.grad is not None
