"""SlowFast detector and classifier built with pytorchvideo's builders, configured through named presets.

Both networks share one backbone layout (stem + 4 stages, pytorchvideo's `blocks.0..4`), so weights move
between them: a clip classifier stands in for Kinetics pretraining, the detector adds an RoI head.
Both return raw logits; the engine owns sigmoid/softmax and the loss.

Preset + override rule: every `ModelConfig` knob defaults to None, meaning "take the preset's value";
a knob set to anything else overrides the preset. `resolve()` applies the rule and validates the result,
so the resolved values (not the Nones) are what a run records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from seal_transfer.errors import UserError

# pytorchvideo names stage depths by ResNet depth; all use bottleneck blocks (18 = one block per stage).
SUPPORTED_DEPTHS = (18, 50, 101, 152)

# PySlowFast / pytorchvideo Kinetics & AVA input normalisation (on [0, 1] RGB). Zoo weights expect these.
INPUT_MEAN = (0.45, 0.45, 0.45)
INPUT_STD = (0.225, 0.225, 0.225)


@dataclass
class ModelConfig:
    """Model section of the run config. None = use the preset's value (see module docstring)."""

    preset: str = "slowfast_r50_8x8"
    depth: Optional[int] = None  # ResNet depth: 18 | 50 | 101 | 152
    num_frames: Optional[int] = None  # T: slow-pathway frames per clip
    alpha: Optional[int] = None  # fast/slow frame-rate ratio; fast pathway gets T*alpha frames
    beta_inv: Optional[int] = None  # slow/fast channel ratio
    sample_rate: Optional[int] = None  # tau: source frames between slow frames; fast stride = tau // alpha
    crop_size: Optional[int] = None  # training crop side in pixels
    stem_width: Optional[int] = None  # slow stem output channels (64 in R50); stage widths scale from it
    fusion_kernel: Optional[int] = None  # temporal kernel of the fast->slow lateral conv
    fusion_channel_ratio: Optional[int] = None  # lateral conv output channels = fast channels * this
    res5_dilated: Optional[bool] = None  # detector res5: stride 1 + dilation 2 (feature stride 16) vs stride 2
    roi_output_size: Optional[int] = None  # RoIAlign output side
    roi_sampling_ratio: Optional[int] = None  # RoIAlign samples per bin (0 = adaptive)
    roi_aligned: Optional[bool] = None  # half-pixel RoIAlign (PySlowFast True; pytorchvideo default False)
    dropout: Optional[float] = None  # dropout before the head projection


@dataclass(frozen=True)
class ResolvedModelConfig:
    """A `ModelConfig` with every knob filled in and checked; what the builders consume."""

    preset: str
    depth: int
    num_frames: int
    alpha: int
    beta_inv: int
    sample_rate: int
    crop_size: int
    stem_width: int
    fusion_kernel: int
    fusion_channel_ratio: int
    res5_dilated: bool
    roi_output_size: int
    roi_sampling_ratio: int
    roi_aligned: bool
    dropout: float

    @property
    def num_fast_frames(self) -> int:
        return self.num_frames * self.alpha

    @property
    def fast_stride(self) -> int:
        """Source frames between consecutive fast-pathway frames."""
        return self.sample_rate // self.alpha

    @property
    def detector_feature_stride(self) -> int:
        """Input pixels per res5 feature cell in the detector (stem 4 x stages 1,2,2,{1|2})."""
        return 16 if self.res5_dilated else 32

    @property
    def roi_spatial_scale(self) -> float:
        return 1.0 / self.detector_feature_stride

    @property
    def stage_out_width(self) -> int:
        """Slow-pathway channels out of res5 (stem_width * 32, i.e. 2048 for R50)."""
        return self.stem_width * 32

    @property
    def head_in_features(self) -> int:
        return self.stage_out_width + self.stage_out_width // self.beta_inv

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's backbone: SlowFast R50 8x8 (T=8, alpha=4, tau=8, beta_inv=8), 224 px, AVA RoI head as in
    # PySlowFast's AVA configs (res5 dilated, RoIAlign 7x7 aligned, scale 1/16).
    "slowfast_r50_8x8": dict(
        depth=50, num_frames=8, alpha=4, beta_inv=8, sample_rate=8, crop_size=224, stem_width=64,
        fusion_kernel=7, fusion_channel_ratio=2, res5_dilated=True, roi_output_size=7, roi_sampling_ratio=0,
        roi_aligned=True, dropout=0.5,
    ),
    # CPU preset for tests and the synthetic world: one bottleneck per stage, 1/8 of R50's widths, 64 px.
    "tiny": dict(
        depth=18, num_frames=4, alpha=4, beta_inv=4, sample_rate=4, crop_size=64, stem_width=8,
        fusion_kernel=5, fusion_channel_ratio=2, res5_dilated=True, roi_output_size=4, roi_sampling_ratio=0,
        roi_aligned=True, dropout=0.2,
    ),
}


def resolve(cfg: ModelConfig | ResolvedModelConfig) -> ResolvedModelConfig:
    """Fill unset knobs from the preset and reject combinations the builders cannot honour."""
    if isinstance(cfg, ResolvedModelConfig):
        return cfg
    if cfg.preset not in PRESETS:
        raise UserError(f"model.preset: unknown preset {cfg.preset!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS[cfg.preset])
    for field in dataclasses.fields(ModelConfig):
        if field.name == "preset":
            continue
        override = getattr(cfg, field.name)
        if override is not None:
            values[field.name] = override
    resolved = ResolvedModelConfig(preset=cfg.preset, **values)
    _validate(resolved)
    return resolved


def _validate(cfg: ResolvedModelConfig) -> None:
    if cfg.depth not in SUPPORTED_DEPTHS:
        raise UserError(f"model.depth: {cfg.depth} is not one of {SUPPORTED_DEPTHS}")
    for name in ("num_frames", "alpha", "beta_inv", "sample_rate", "crop_size", "stem_width", "fusion_kernel",
                 "fusion_channel_ratio", "roi_output_size"):
        if getattr(cfg, name) < 1:
            raise UserError(f"model.{name}: must be >= 1, got {getattr(cfg, name)}")
    if cfg.roi_sampling_ratio < 0:
        raise UserError(f"model.roi_sampling_ratio: must be >= 0, got {cfg.roi_sampling_ratio}")
    if cfg.sample_rate % cfg.alpha:
        raise UserError(
            f"model.sample_rate: {cfg.sample_rate} is not a multiple of model.alpha={cfg.alpha}; "
            "slow frames must coincide with fast frames"
        )
    if cfg.stem_width % cfg.beta_inv:
        raise UserError(f"model.stem_width: {cfg.stem_width} is not a multiple of model.beta_inv={cfg.beta_inv}")
    if cfg.fusion_kernel % 2 == 0:
        raise UserError(f"model.fusion_kernel: must be odd to keep slow/fast frames aligned, got {cfg.fusion_kernel}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise UserError(f"model.dropout: must be in [0, 1), got {cfg.dropout}")


@dataclass(frozen=True)
class InputSpec:
    """What the data layer must decode for one clip."""

    num_slow_frames: int
    num_fast_frames: int
    fast_stride: int  # source frames between fast frames
    alpha: int  # slow = every alpha-th fast frame (see `pack_pathways`)
    crop_size: int
    clip_span: int  # source frames covered by the fast pathway (num_fast_frames * fast_stride)
    mean: tuple[float, float, float] = INPUT_MEAN
    std: tuple[float, float, float] = INPUT_STD


def input_spec(cfg: ModelConfig | ResolvedModelConfig) -> InputSpec:
    """Decode plan for a clip: fast pathway = T*alpha frames, `sample_rate // alpha` source frames apart."""
    r = resolve(cfg)
    return InputSpec(
        num_slow_frames=r.num_frames,
        num_fast_frames=r.num_fast_frames,
        fast_stride=r.fast_stride,
        alpha=r.alpha,
        crop_size=r.crop_size,
        clip_span=r.num_fast_frames * r.fast_stride,
    )


def pack_pathways(frames: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """Split fast-pathway frames (..., C, T_fast, H, W) into [slow, fast].

    Uses the same linspace frame choice as PySlowFast/pytorchvideo `PackPathway`, so zoo weights see the
    slow input they were trained on (evenly spaced, not exactly every alpha-th frame).
    """
    if frames.ndim < 4:
        raise ValueError(f"pack_pathways wants (..., C, T, H, W), got {tuple(frames.shape)}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    num_fast = frames.shape[-3]
    if num_fast // alpha == 0:
        raise ValueError(f"clip of {num_fast} frames is shorter than alpha={alpha}: slow pathway would be empty")
    index = torch.linspace(0, num_fast - 1, num_fast // alpha, device=frames.device).long()
    slow = torch.index_select(frames, -3, index)
    return [slow, frames]


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
