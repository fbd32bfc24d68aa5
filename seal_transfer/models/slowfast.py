"""SlowFast detector and classifier built with pytorchvideo's builders, configured through named presets.

Both networks share one backbone layout (stem + 4 stages, pytorchvideo's `blocks.0..4`), so weights move
between them: a clip classifier stands in for Kinetics pretraining, the detector adds an RoI head.
Both return raw logits; the engine owns sigmoid/softmax and the loss.

The config sections, presets and `resolve()` live in `models/config.py` (torch-free).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from seal_transfer.errors import UserError
from seal_transfer.models.config import (
    INPUT_MEAN,
    INPUT_STD,
    PRESETS,
    SUPPORTED_DEPTHS,
    ModelConfig,
    ResolvedModelConfig,
    clip_spec,
    resolve,
)

__all__ = ["INPUT_MEAN", "INPUT_STD", "PRESETS", "SUPPORTED_DEPTHS", "ModelConfig", "ResolvedModelConfig",
           "build_classifier", "build_detector", "clip_spec", "resolve"]

def _backbone_kwargs(r: ResolvedModelConfig, *, detector: bool) -> dict[str, Any]:
    """Builder arguments shared by detector and classifier: identical parameter shapes, so weights transfer.

    The detector differs only in res5's stride/dilation (no parameter changes), as in PySlowFast's AVA setup.
    """
    dilate_res5 = detector and r.res5_dilated
    res5_stride = 1 if dilate_res5 else 2
    res5_dilation = (1, 2, 2) if dilate_res5 else (1, 1, 1)
    no_dilation = (1, 1, 1)
    return dict(
        slowfast_channel_reduction_ratio=(r.beta_inv,),
        slowfast_conv_channel_fusion_ratio=r.fusion_channel_ratio,
        slowfast_fusion_conv_kernel_size=(r.fusion_kernel, 1, 1),
        slowfast_fusion_conv_stride=(r.alpha, 1, 1),
        input_channels=(3, 3),
        model_depth=r.depth,
        dropout_rate=r.dropout,
        stem_dim_outs=(r.stem_width, r.stem_width // r.beta_inv),
        stage_spatial_strides=((1, 2, 2, res5_stride),) * 2,
        stage_conv_b_dilations=((no_dilation, no_dilation, no_dilation, res5_dilation),) * 2,
        head_activation=None,
    )


def build_detector(cfg: ModelConfig | ResolvedModelConfig, num_classes: int) -> nn.Module:
    """SlowFast + RoI head. Call as `model([slow, fast], boxes)`; boxes (K, 5) = [batch_idx, x1, y1, x2, y2]
    in input pixels; returns (K, num_classes) logits.

    State-dict keys match pytorchvideo's AVA zoo model (`model.blocks.0-4.*`, `detection_head.proj.*`).
    """
    from pytorchvideo.models.slowfast import create_slowfast_with_roi_head
    from torchvision.ops import RoIAlign

    r = resolve(cfg)
    _check_num_classes(num_classes)
    model = create_slowfast_with_roi_head(
        **_backbone_kwargs(r, detector=True),
        model_num_class=num_classes,
        # Average all T frames of each pathway to one before RoIAlign (PySlowFast's s{p}_tpool).
        head_pool=nn.AvgPool3d,
        head_pool_kernel_sizes=((r.num_frames, 1, 1), (r.num_fast_frames, 1, 1)),
        head_output_with_global_average=False,
        head_spatial_resolution=(r.roi_output_size, r.roi_output_size),
        head_spatial_scale=r.roi_spatial_scale,
        head_sampling_ratio=r.roi_sampling_ratio,
    )
    # The builder hard-codes torchvision RoIAlign(aligned=False); swap in the configured one. RoIAlign has no
    # parameters, so state-dict keys are unchanged and zoo checkpoints still load.
    model.detection_head.roi_layer = RoIAlign(
        output_size=(r.roi_output_size, r.roi_output_size),
        spatial_scale=r.roi_spatial_scale,
        sampling_ratio=r.roi_sampling_ratio,
        aligned=r.roi_aligned,
    )
    _stop_input_mutation(model)
    return model


def build_classifier(cfg: ModelConfig | ResolvedModelConfig, num_classes: int) -> nn.Module:
    """SlowFast clip classifier (Kinetics-style): `model([slow, fast])` -> (B, num_classes) logits.

    Keys match pytorchvideo's Kinetics zoo model (`blocks.0-4.*` backbone, `blocks.6.proj.*` head). Global
    average pooling is adaptive, so any crop size or clip length works.
    """
    from pytorchvideo.models.slowfast import create_slowfast

    r = resolve(cfg)
    _check_num_classes(num_classes)
    model = create_slowfast(
        **_backbone_kwargs(r, detector=False),
        model_num_class=num_classes,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        head_output_with_global_average=True,
    )
    _stop_input_mutation(model)
    return model


def _stop_input_mutation(model: nn.Module) -> None:
    """pytorchvideo's first block writes stem outputs into the caller's [slow, fast] list by default; a caller
    that reuses the list (two views, teacher and student) would silently feed features as frames."""
    from pytorchvideo.models.net import MultiPathWayWithFuse

    for module in model.modules():
        if isinstance(module, MultiPathWayWithFuse):
            module.inplace = False


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 1:
        raise UserError(f"num_classes: must be >= 1, got {num_classes}")
