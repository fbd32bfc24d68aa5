"""SlowFast builders: presets, key names shared with pytorchvideo's zoo models, logits out, input plan."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from seal_transfer.data.clip import pack_pathways
from seal_transfer.errors import UserError
from seal_transfer.models.config import ModelConfig, clip_spec, resolve
from seal_transfer.models.slowfast import build_classifier, build_detector

TINY = ModelConfig(preset="tiny")


def _inputs(cfg: ModelConfig, batch: int = 2, height: int | None = None, width: int | None = None):
    r = resolve(cfg)
    h = height or r.crop_size
    w = width or r.crop_size
    fast = torch.randn(batch, 3, r.num_fast_frames, h, w, generator=torch.Generator().manual_seed(0))
    return pack_pathways(fast, r.alpha)


def test_preset_values_and_override_rule():
    r50 = resolve(ModelConfig())
    assert (r50.depth, r50.num_frames, r50.alpha, r50.beta_inv, r50.sample_rate, r50.crop_size) == (50, 8, 4, 8, 8, 224)
    assert r50.roi_aligned is True and r50.roi_spatial_scale == 1 / 16
    overridden = resolve(ModelConfig(preset="tiny", num_frames=2, roi_aligned=False))
    assert overridden.num_frames == 2 and overridden.roi_aligned is False
    assert overridden.alpha == resolve(TINY).alpha  # untouched knobs keep the preset's value


def test_structured_config_merge_resolves():
    schema = OmegaConf.structured(ModelConfig)
    merged = OmegaConf.merge(schema, OmegaConf.from_dotlist(["preset=tiny", "crop_size=96"]))
    r = resolve(OmegaConf.to_object(merged))
    assert r.preset == "tiny" and r.crop_size == 96


@pytest.mark.parametrize(
    "cfg, key",
    [
        (ModelConfig(preset="nope"), "model.preset"),
        (ModelConfig(preset="tiny", sample_rate=6), "model.sample_rate"),
        (ModelConfig(preset="tiny", depth=34), "model.depth"),
        (ModelConfig(preset="tiny", fusion_kernel=4), "model.fusion_kernel"),
        (ModelConfig(preset="tiny", dropout=1.0), "model.dropout"),
    ],
)
def test_invalid_config_names_the_key(cfg, key):
    with pytest.raises(UserError, match=key):
        resolve(cfg)


def test_clip_spec_matches_slowfast_sampling():
    spec = clip_spec(ModelConfig())
    assert (spec.num_slow_frames, spec.num_frames, spec.sample_rate, spec.alpha) == (8, 32, 2, 4)
    assert spec.span == 64 and resolve(ModelConfig()).crop_size == 224
    tiny = clip_spec(TINY)
    assert tiny.num_frames == tiny.num_slow_frames * tiny.alpha


def test_pack_pathways_picks_linspace_frames():
    frames = torch.arange(32, dtype=torch.float32).view(1, 1, 32, 1, 1).expand(2, 3, 32, 4, 4)
    slow, fast = pack_pathways(frames, 4)
    assert slow.shape[2] == 8 and fast is frames
    assert slow[0, 0, :, 0, 0].tolist() == torch.linspace(0, 31, 8).long().float().tolist()


def test_detector_returns_logits_per_box_and_keeps_zoo_key_names():
    model = build_detector(TINY, num_classes=5).eval()
    keys = model.state_dict().keys()
    assert "model.blocks.0.multipathway_blocks.0.conv.weight" in keys
    assert "model.blocks.0.multipathway_fusion.conv_fast_to_slow.weight" in keys
    assert {"detection_head.proj.weight", "detection_head.proj.bias"} <= set(keys)
    assert model.detection_head.activation is None
    roi = model.detection_head.roi_layer
    assert roi.aligned is True and roi.sampling_ratio == 0 and roi.spatial_scale == 1 / 16

    x = _inputs(TINY)
    boxes = torch.tensor([[0, 4.0, 4.0, 40.0, 60.0], [1, 0.0, 0.0, 63.0, 63.0], [1, 30.0, 10.0, 50.0, 30.0]])
    with torch.no_grad():
        out = model(x, boxes)
    assert out.shape == (3, 5)
    assert not torch.allclose(out[1], out[2])  # the RoI actually selects features


def test_detector_does_not_mutate_the_input_list():
    model = build_detector(TINY, num_classes=3).eval()
    x = _inputs(TINY)
    original = [t.clone() for t in x]
    with torch.no_grad():
        model(x, torch.tensor([[0, 1.0, 1.0, 30.0, 30.0]]))
    assert all(torch.equal(a, b) for a, b in zip(x, original))


def test_detector_accepts_non_square_frames_and_roi_overrides():
    cfg = ModelConfig(preset="tiny", roi_aligned=False, roi_sampling_ratio=2, roi_output_size=3)
    model = build_detector(cfg, num_classes=4).eval()
    roi = model.detection_head.roi_layer
    assert roi.aligned is False and roi.sampling_ratio == 2 and roi.output_size == (3, 3)
    with torch.no_grad():
        out = model(_inputs(cfg, height=64, width=96), torch.tensor([[0, 50.0, 2.0, 95.0, 60.0]]))
    assert out.shape == (1, 4)


def test_r50_preset_has_paper_shapes():
    model = build_detector(ModelConfig(), num_classes=80)
    state = model.state_dict()
    assert tuple(state["detection_head.proj.weight"].shape) == (80, 2304)
    assert tuple(state["model.blocks.0.multipathway_blocks.1.conv.weight"].shape) == (8, 3, 5, 7, 7)
    # res4 has 6 bottlenecks in R50
    assert "model.blocks.3.multipathway_blocks.0.res_blocks.5.branch2.conv_c.weight" in state
    assert 33_000_000 < sum(p.numel() for p in model.parameters()) < 35_000_000


def test_classifier_shares_backbone_names_and_shapes_with_detector():
    detector = build_detector(TINY, num_classes=5).state_dict()
    classifier = build_classifier(TINY, num_classes=7).state_dict()
    det_backbone = {k[len("model."):]: v.shape for k, v in detector.items() if k.startswith("model.blocks.")}
    cls_backbone = {k: v.shape for k, v in classifier.items() if not k.startswith("blocks.6.")}
    assert det_backbone == cls_backbone
    assert tuple(classifier["blocks.6.proj.weight"].shape) == (7, resolve(TINY).head_in_features)


def test_classifier_outputs_logits_for_any_crop():
    model = build_classifier(TINY, num_classes=7).eval()
    with torch.no_grad():
        out = model(_inputs(TINY, height=80, width=96))
    assert out.shape == (2, 7)
    assert model.blocks[6].activation is None


def test_channels_last_and_bf16_autocast_forward_on_cpu():
    model = build_detector(TINY, num_classes=5).eval()
    x = _inputs(TINY)
    boxes = torch.tensor([[0, 4.0, 4.0, 40.0, 60.0], [1, 10.0, 8.0, 50.0, 50.0]])
    with torch.no_grad():
        reference = model(x, boxes)
        model_cl = model.to(memory_format=torch.channels_last_3d)
        x_cl = [t.contiguous(memory_format=torch.channels_last_3d) for t in x]
        assert torch.allclose(model_cl(x_cl, boxes), reference, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, boxes)
    assert low.shape == reference.shape and torch.isfinite(low).all()
    assert torch.allclose(low.float(), reference, atol=0.05 * reference.abs().max().item() + 1e-3)


def test_training_step_reaches_the_backbone():
    model = build_detector(TINY, num_classes=3).train()
    out = model(_inputs(TINY, batch=2), torch.tensor([[0, 4.0, 4.0, 40.0, 60.0], [1, 0.0, 0.0, 63.0, 63.0]]))
    torch.nn.functional.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
    stem = model.model.blocks[0].multipathway_blocks[1].conv.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
