"""The model layer's config sections, presets and their resolution (torch-free).

`model.*` configures the SlowFast detector / classifier (`ModelConfig`, named presets, `resolve`), and
`tubes.tad.*` the temporal detector of Table 4 (`TadConfig`). Kept apart from the builders so that loading and
checking a config, and `--help`, never import torch.

Preset + override rule: every `ModelConfig` knob defaults to None, meaning "take the preset's value";
a knob set to anything else overrides the preset. `resolve()` applies the rule and validates the result,
so the resolved values (not the Nones) are what a run records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from seal_transfer.data.config import ClipSpec
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

    def validate(self, key: str = "model") -> None:
        """The preset exists and the resolved combination can be built (messages name `model.<knob>`)."""
        resolve(self)


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


def clip_spec(cfg: ModelConfig | ResolvedModelConfig) -> ClipSpec:
    """What the data layer decodes per clip for this model: T*alpha fast frames, `sample_rate // alpha` apart."""
    r = resolve(cfg)
    return ClipSpec(num_frames=r.num_fast_frames, sample_rate=r.fast_stride, alpha=r.alpha)


@dataclass
class TadConfig:
    """Temporal detector knobs (the paper names none: values follow ActionFormer / Faster-TAD practice)."""

    hidden: int = 256  # channels of the embedding and the pyramid
    embed_layers: int = 2  # conv layers before the pyramid
    levels: int = 6  # pyramid levels (strides 1, 2, …, 2^(levels-1) steps)
    head_layers: int = 2  # conv layers of the proposal heads (shared over levels)
    center_radius: float = 1.5  # positives: positions within this many level strides of a segment's centre
    roi_bins: int = 16  # RoIAlign bins inside a proposal
    context_bins: int = 4  # RoIAlign bins on each side (boundary context)
    context_ratio: float = 0.25  # context width as a fraction of the proposal length
    pre_nms_proposals: int = 1000  # best-actionness proposals kept before proposal NMS
    proposal_nms_iou: float = 0.7
    num_proposals: int = 100  # proposals per tube sent to the RoI head
    positive_iou: float = 0.5  # proposal ↔ ground-truth tIoU that makes a positive RoI sample
    dropout: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    loss_weight_boundary: float = 1.0
    loss_weight_classification: float = 1.0
    loss_weight_refinement: float = 1.0
    soft_nms_sigma: float = 0.5  # Gaussian soft-NMS decay
    max_detections: int = 100  # per tube after soft-NMS (ActivityNet keeps 100 per video)
    score_threshold: float = 0.001
