"""Checkpoint loading: every supported layout, with the real files' key names, proven by tensor equality."""

from __future__ import annotations

import pytest
import torch

from seal_transfer.errors import UserError
from seal_transfer.models.checkpoints import (
    LAYOUT_LIGHTNING,
    LAYOUT_PTV_CLASSIFICATION,
    LAYOUT_PTV_DETECTION,
    LAYOUT_PYSLOWFAST,
    LAYOUT_STATE_DICT,
    detect_layout,
    load_weights,
    pyslowfast_to_pytorchvideo_key,
    pytorchvideo_to_pyslowfast_key,
    to_pyslowfast_state_dict,
)
from seal_transfer.models.config import ModelConfig
from seal_transfer.models.slowfast import build_classifier, build_detector

TINY = ModelConfig(preset="tiny")
PYSLOWFAST_DETECTION_CFG = "DETECTION:\n  ENABLE: true\n  ALIGNED: true\nMODEL:\n  ARCH: slowfast\n"
PYSLOWFAST_KINETICS_CFG = "DETECTION:\n  ENABLE: false\nMODEL:\n  ARCH: slowfast\n"


class NotATensor:  # module-level so pickle can store it: stands in for a config object inside a checkpoint
    pass


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fill every parameter and buffer (BN statistics included) so equality after loading means something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.fill_(seed)
    return model


def _source_detector(num_classes: int = 5) -> torch.nn.Module:
    return _randomised(build_detector(TINY, num_classes), seed=1)


def _source_classifier(num_classes: int = 7) -> torch.nn.Module:
    return _randomised(build_classifier(TINY, num_classes), seed=2)


def _backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Backbone tensors under classifier names, from a detector or a classifier state dict."""
    out = {}
    for key, tensor in state.items():
        name = key[len("model."):] if key.startswith("model.blocks.") else key
        if name.startswith("blocks.") and int(name.split(".")[1]) < 5:
            out[name] = tensor
    return out


def _assert_same(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_pytorchvideo_detection_layout_loads_everything(tmp_path):
    source = _source_detector()
    path = _save(tmp_path, "SLOWFAST_8x8_R50_DETECTION.pyth",
                 {"model_state": source.state_dict(), "epoch": 20, "optimizer_state": {}})
    assert detect_layout(torch.load(path, weights_only=True)) == LAYOUT_PTV_DETECTION

    target = build_detector(TINY, 5)
    report = load_weights(target, path)
    _assert_same(source.state_dict(), target.state_dict())
    assert report.head_loaded and not report.missing and not report.unexpected
    assert not report.skipped_shape_mismatch
    assert "pytorchvideo_detection" in report.summary()


def test_class_count_change_keeps_fresh_head_and_loads_backbone(tmp_path):
    path = _save(tmp_path, "det.pyth", {"model_state": _source_detector(num_classes=5).state_dict()})
    target = build_detector(TINY, 9)
    fresh_head = target.detection_head.proj.weight.detach().clone()
    report = load_weights(target, path)
    _assert_same(_backbone(_source_detector().state_dict()), _backbone(target.state_dict()))
    assert torch.equal(target.detection_head.proj.weight, fresh_head)
    assert not report.head_loaded
    assert {s.split(" ")[0] for s in report.skipped_shape_mismatch} == {
        "detection_head.proj.weight", "detection_head.proj.bias"}
    assert "fresh initialisation" in report.summary()


def test_detector_takes_backbone_of_kinetics_style_classifier(tmp_path):
    source = _source_classifier()
    path = _save(tmp_path, "SLOWFAST_8x8_R50.pyth", {"model_state": source.state_dict(), "epoch": 196})
    assert detect_layout(torch.load(path, weights_only=True)) == LAYOUT_PTV_CLASSIFICATION

    target = build_detector(TINY, 7)  # same class count: the head must still NOT transfer across kinds
    fresh_head = target.detection_head.proj.weight.detach().clone()
    report = load_weights(target, path)
    _assert_same(_backbone(source.state_dict()), _backbone(target.state_dict()))
    assert torch.equal(target.detection_head.proj.weight, fresh_head)
    assert {"blocks.6.proj.weight", "blocks.6.proj.bias"} <= set(report.unexpected)
    assert report.backbone_loaded == report.backbone_total > 0


def test_classifier_takes_backbone_of_detector(tmp_path):
    source = _source_detector()
    path = _save(tmp_path, "det.pth", source.state_dict())
    target = build_classifier(TINY, 7)
    report = load_weights(target, path)
    assert report.layout == LAYOUT_STATE_DICT
    _assert_same(_backbone(source.state_dict()), _backbone(target.state_dict()))
    assert "detection_head.proj.weight" in report.unexpected and not report.head_loaded


def test_pyslowfast_key_mapping_pinned_by_hand():
    pairs = {
        "s1.pathway0_stem.conv.weight": "blocks.0.multipathway_blocks.0.conv.weight",
        "s1.pathway1_stem.bn.running_mean": "blocks.0.multipathway_blocks.1.norm.running_mean",
        "s1_fuse.conv_f2s.weight": "blocks.0.multipathway_fusion.conv_fast_to_slow.weight",
        "s4_fuse.bn.num_batches_tracked": "blocks.3.multipathway_fusion.norm.num_batches_tracked",
        "s2.pathway0_res0.branch1.weight": "blocks.1.multipathway_blocks.0.res_blocks.0.branch1_conv.weight",
        "s2.pathway0_res0.branch2.a.weight": "blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight",
        "s4.pathway0_res5.branch2.c_bn.running_var":
            "blocks.3.multipathway_blocks.0.res_blocks.5.branch2.norm_c.running_var",
        "s5.pathway1_res2.branch1_bn.bias": "blocks.4.multipathway_blocks.1.res_blocks.2.branch1_norm.bias",
        "head.projection.weight": "head.proj.weight",
    }
    for pyslowfast, pytorchvideo in pairs.items():
        assert pyslowfast_to_pytorchvideo_key(pyslowfast) == pytorchvideo
        assert pytorchvideo_to_pyslowfast_key(pytorchvideo) == pyslowfast
    assert pyslowfast_to_pytorchvideo_key("s3.pathway0_nonlocal1.conv_theta.weight") is None
    assert pyslowfast_to_pytorchvideo_key("s1.s0_stem.conv.weight") == "blocks.0.multipathway_blocks.0.conv.weight"


def test_pyslowfast_names_cover_the_whole_r50_network():
    names = set(to_pyslowfast_state_dict(build_detector(ModelConfig(), 80).state_dict()))
    assert {"s1.pathway0_stem.conv.weight", "s1_fuse.conv_f2s.weight", "s2.pathway0_res0.branch2.a.weight",
            "s4.pathway0_res5.branch2.c.weight", "s5.pathway1_res2.branch2.c_bn.running_mean",
            "head.projection.weight", "head.projection.bias"} <= names
    assert not any(n.startswith("s5_fuse") for n in names)  # PySlowFast has no fusion after res5


def test_pyslowfast_detection_checkpoint_loads_with_head(tmp_path):
    source = _source_detector()
    state = to_pyslowfast_state_dict(source.state_dict())
    assert "s2.pathway1_res0.branch2.b_bn.weight" in state
    path = _save(tmp_path, "SLOWFAST_8x8_R50_AVA.pyth",
                 {"model_state": state, "epoch": 6, "cfg": PYSLOWFAST_DETECTION_CFG})
    assert detect_layout(torch.load(path, weights_only=True)) == LAYOUT_PYSLOWFAST
    target = build_detector(TINY, 5)
    report = load_weights(target, path)
    _assert_same(source.state_dict(), target.state_dict())
    assert report.head_loaded and not report.missing and not report.unexpected


def test_pyslowfast_kinetics_checkpoint_gives_detector_its_backbone_only(tmp_path):
    source = _source_classifier(num_classes=5)
    path = _save(tmp_path, "k400.pyth", {"model_state": to_pyslowfast_state_dict(source.state_dict()),
                                         "cfg": PYSLOWFAST_KINETICS_CFG})
    target = build_detector(TINY, 5)
    fresh_head = target.detection_head.proj.weight.detach().clone()
    report = load_weights(target, path)
    _assert_same(_backbone(source.state_dict()), _backbone(target.state_dict()))
    assert torch.equal(target.detection_head.proj.weight, fresh_head)
    assert "head.projection.weight" in report.unexpected


def test_pyslowfast_unconvertible_key_is_a_user_error(tmp_path):
    state = to_pyslowfast_state_dict(_source_detector().state_dict())
    state["s4.pathway0_nonlocal2.conv_theta.weight"] = torch.zeros(1)
    path = _save(tmp_path, "nl.pyth", {"model_state": state})
    with pytest.raises(UserError, match=r"nl\.pyth.*s4\.pathway0_nonlocal2\.conv_theta\.weight"):
        load_weights(build_detector(TINY, 5), path)


def test_lightning_checkpoint_strips_model_prefix(tmp_path):
    source = _source_detector()
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    state["teacher_scores"] = torch.ones(3)
    path = _save(tmp_path, "epoch=3-step=10.ckpt", {
        "state_dict": state, "epoch": 3, "global_step": 10, "pytorch-lightning_version": "2.5.0",
        "optimizer_states": [], "lr_schedulers": [], "hyper_parameters": {"lr": 0.1},
    })
    assert detect_layout(torch.load(path, weights_only=True)) == LAYOUT_LIGHTNING
    target = build_detector(TINY, 5)
    report = load_weights(target, path)
    _assert_same(source.state_dict(), target.state_dict())
    assert report.unexpected == ["teacher_scores"] and report.key_style == LAYOUT_PTV_DETECTION


def test_plain_and_ddp_prefixed_state_dicts(tmp_path):
    source = _source_detector()
    for name, state in [("plain.pt", source.state_dict()),
                        ("ddp.pt", {f"module.{k}": v for k, v in source.state_dict().items()})]:
        target = build_detector(TINY, 5)
        report = load_weights(target, _save(tmp_path, name, state))
        assert report.layout == LAYOUT_STATE_DICT
        _assert_same(source.state_dict(), target.state_dict())


def test_pickle_needed_is_refused_without_the_flag(tmp_path):
    source = _source_detector()
    path = _save(tmp_path, "legacy.pyth", {"model_state": source.state_dict(), "cfg": NotATensor()})
    with pytest.raises(UserError, match=r"legacy\.pyth.*allow_pickle=True"):
        load_weights(build_detector(TINY, 5), path)
    target = build_detector(TINY, 5)
    with pytest.warns(UserWarning, match="full pickle"):
        load_weights(target, path, allow_pickle=True)
    _assert_same(source.state_dict(), target.state_dict())


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    good = _save(tmp_path, "good.pyth", {"model_state": _source_detector().state_dict()})
    truncated = tmp_path / "truncated.pyth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pyth"
    text.write_text("this is not a checkpoint\n")
    empty = tmp_path / "empty.pyth"
    empty.write_bytes(b"")
    for path in (truncated, text, empty, tmp_path / "absent.pyth"):
        with pytest.raises(UserError, match=path.name):
            load_weights(build_detector(TINY, 5), path)


def test_non_checkpoint_objects_are_rejected(tmp_path):
    with pytest.raises(UserError, match="list"):
        detect_layout([1, 2])
    path = _save(tmp_path, "numbers.pt", {"epoch": 3, "note": "no tensors"})
    with pytest.raises(UserError, match=r"numbers\.pt.*no weights"):
        load_weights(build_detector(TINY, 5), path)


def test_wrong_architecture_is_an_error_not_a_silent_no_op(tmp_path):
    wider = build_detector(ModelConfig(preset="tiny", stem_width=16), 5)
    path = _save(tmp_path, "wider.pyth", {"model_state": wider.state_dict()})
    with pytest.raises(UserError, match="no backbone weight"):
        load_weights(build_detector(TINY, 5), path)


def test_strict_backbone_rejects_missing_tensor(tmp_path):
    state = _source_detector().state_dict()
    dropped = "model.blocks.2.multipathway_blocks.0.res_blocks.0.branch2.conv_b.weight"
    del state[dropped]
    path = _save(tmp_path, "partial.pyth", {"model_state": state})
    report = load_weights(build_detector(TINY, 5), path)
    assert report.missing == [dropped]
    with pytest.raises(UserError, match="strict_backbone"):
        load_weights(build_detector(TINY, 5), path, strict_backbone=True)


# ------------------------------------------------------------------ RoIAlign convention of the file's origin


def _zoo_detector(tmp_path):
    """pytorchvideo's AVA zoo layout (`model_state` with detector names), as SLOWFAST_8x8_R50_DETECTION.pyth."""
    return _save(tmp_path, "SLOWFAST_8x8_R50_DETECTION.pyth", {"model_state": _source_detector().state_dict()})


def _roi_inputs():
    generator = torch.Generator().manual_seed(0)
    slow, fast = torch.rand(1, 3, 4, 64, 64, generator=generator), torch.rand(1, 3, 16, 64, 64, generator=generator)
    boxes = torch.tensor([[0, 3.3, 5.1, 40.7, 61.2], [0, 20.5, 1.4, 63.0, 33.9]])
    return [slow, fast], boxes


def test_pytorchvideo_zoo_detector_runs_with_pytorchvideos_roi_convention(tmp_path):
    """Unset model.roi_aligned follows the zoo file (aligned=False), reproducing pytorchvideo's own scores."""
    from torchvision.ops import RoIAlign

    from seal_transfer.models.checkpoints import matching_model_config

    path = _zoo_detector(tmp_path)
    matched = matching_model_config({"preset": "tiny", "roi_aligned": None}, path)
    assert matched["roi_aligned"] is False
    assert matching_model_config({"preset": "tiny", "roi_aligned": True}, path)["roi_aligned"] is True  # user wins

    ours = build_detector(ModelConfig(**matched), 5).eval()
    report = load_weights(ours, path)
    assert "RoIAlign runs with aligned=False, as pytorchvideo's AVA detector was trained." in report.summary()
    native = build_detector(TINY, 5).eval()
    load_weights(native, path)
    native.detection_head.roi_layer = RoIAlign((4, 4), spatial_scale=1 / 16, sampling_ratio=0, aligned=False)
    inputs, boxes = _roi_inputs()
    with torch.no_grad():
        assert torch.equal(ours(inputs, boxes), native(inputs, boxes))  # what pytorchvideo itself computes

    preset = build_detector(TINY, 5).eval()  # the preset's aligned=True, as before the fix
    summary = load_weights(preset, path).summary()
    assert "pytorchvideo's AVA detector was trained with aligned=False, but this model runs aligned=True" in summary
    with torch.no_grad():
        assert not torch.equal(preset(inputs, boxes), native(inputs, boxes))


def test_roi_convention_of_each_origin(tmp_path):
    from seal_transfer.models.checkpoints import roi_convention

    state = _source_detector().state_dict()
    psf = to_pyslowfast_state_dict(state)
    assert roi_convention({"model_state": state}) == (False, "pytorchvideo's AVA detector")
    assert roi_convention({"model_state": psf, "cfg": PYSLOWFAST_DETECTION_CFG})[0] is True
    assert roi_convention({"model_state": psf, "cfg": "DETECTION:\n  ENABLE: true\n  ALIGNED: false\n"})[0] is False
    assert roi_convention({"model_state": psf, "cfg": PYSLOWFAST_KINETICS_CFG}) == (None, "")
    ours = {"state_dict": {f"model.{k}": v for k, v in state.items()}}
    assert roi_convention({**ours, "seal_transfer": {"model": {"preset": "tiny", "roi_aligned": False}}})[0] is False
    assert roi_convention({**ours, "seal_transfer": {"model": {"preset": "tiny"}}})[0] is True  # the preset's
    assert roi_convention(state) == (None, "")  # a bare state dict: origin unknown, nothing is changed


def test_stage_model_config_follows_the_init_unless_the_key_is_set(tmp_path, capsys):
    from seal_transfer.config import Config
    from seal_transfer.config.loader import load_config
    from seal_transfer.engine.supervised import model_config_for

    path = _zoo_detector(tmp_path)
    cfg = load_config(Config, [], ["model.preset=tiny"])
    assert model_config_for(cfg, path, "finetune")["roi_aligned"] is False
    assert "[finetune] RoIAlign aligned=False, the convention" in capsys.readouterr().out
    assert model_config_for(cfg, None, "finetune")["roi_aligned"] is None
    explicit = load_config(Config, [], ["model.preset=tiny", "model.roi_aligned=true"])
    assert model_config_for(explicit, path, "finetune")["roi_aligned"] is True
