"""SlowFast detector/classifier builders (pytorchvideo) and checkpoint loading."""

from seal_transfer.models.checkpoints import LoadReport, detect_layout, load_weights, read_checkpoint
from seal_transfer.models.slowfast import (
    PRESETS,
    InputSpec,
    ModelConfig,
    ResolvedModelConfig,
    build_classifier,
    build_detector,
    input_spec,
    pack_pathways,
    resolve,
)

__all__ = [
    "PRESETS",
    "InputSpec",
    "LoadReport",
    "ModelConfig",
    "ResolvedModelConfig",
    "build_classifier",
    "build_detector",
    "detect_layout",
    "input_spec",
    "load_weights",
    "pack_pathways",
    "read_checkpoint",
    "resolve",
]
