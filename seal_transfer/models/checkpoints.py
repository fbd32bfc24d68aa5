"""Load weights from local checkpoint files into our SlowFast detector / classifier.

Every file is read with `torch.load(weights_only=True)`: a checkpoint is untrusted input and full pickle can
run arbitrary code. A file that needs full pickle loads only with an explicit `allow_pickle=True`.

Recognised layouts (`detect_layout`):
  pytorchvideo_detection       ckpt["model_state"]: model.blocks.0-4.*, detection_head.proj.*  (AVA zoo)
  pytorchvideo_classification  ckpt["model_state"]: blocks.0-4.*, blocks.6.proj.*            (Kinetics zoo)
  pyslowfast                   ckpt["model_state"]: s1.pathway0_stem.*, s2.pathway0_res0.*, head.projection.*
  lightning                    ckpt["state_dict"]: model.<key> (our LightningModule keeps the net in `self.model`)
  state_dict                   a bare {name: tensor} mapping in any of the namings above

Everything is converted to one canonical form (pytorchvideo classifier names `blocks.0-4.*` for the backbone
plus a head tagged detection/classification), then matched against the target model by name and shape.
The backbone moves freely between detector and classifier; a head loads only into the same kind of head
with the same shape, otherwise the model keeps its fresh head and the report says why.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from seal_transfer.errors import UserError

LAYOUT_PTV_DETECTION = "pytorchvideo_detection"
LAYOUT_PTV_CLASSIFICATION = "pytorchvideo_classification"
LAYOUT_PYSLOWFAST = "pyslowfast"
LAYOUT_LIGHTNING = "lightning"
LAYOUT_STATE_DICT = "state_dict"

DETECTION = "detection"
CLASSIFICATION = "classification"

# Backbone = stem + res2..res5 = pytorchvideo blocks 0..4 in both the classifier and the detector.
NUM_BACKBONE_BLOCKS = 5
_LIGHTNING_MODEL_PREFIX = "model."
_DETECTOR_BACKBONE_PREFIX = "model."
_DETECTOR_HEAD_PREFIX = "detection_head."


class _LayoutError(ValueError):
    """A structural problem with a loaded object; callers add the file name."""


# ---------------------------------------------------------------------------------------------------------
# Reading files


def read_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> Any:
    """torch.load a local file safely; every failure becomes a UserError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        if not message.startswith("Weights only load failed"):
            raise _unreadable(path, error) from None
        reason = _pickle_reason(message)
        if not allow_pickle:
            raise UserError(
                f"{path}: this checkpoint stores Python objects besides tensors ({reason}) and can only be read "
                "with full pickle, which can run arbitrary code; pass allow_pickle=True only if you trust the file"
            ) from None
    except Exception as error:  # noqa: BLE001 - torch reports corrupt files with many exception types
        raise _unreadable(path, error) from None

    warnings.warn(f"{path}: loading with full pickle (allow_pickle=True); only do this for trusted files",
                  UserWarning, stacklevel=2)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001
        raise _unreadable(path, error) from None


def _pickle_reason(message: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"(Unsupported operand \d+)", message)
    return f"needs {found.group(1)}" if found else "not a weights-only file"


def _unreadable(path: Path, error: BaseException) -> UserError:
    detail = (str(error).strip().splitlines() or [""])[0][:160]
    hint = " (Caffe2 .pkl checkpoints are not supported)" if path.suffix == ".pkl" else ""
    return UserError(
        f"{path}: not a readable PyTorch checkpoint - truncated or not a checkpoint{hint} "
        f"[{type(error).__name__}: {detail}]"
    )


# ---------------------------------------------------------------------------------------------------------
# Layout detection


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop a prefix that every key carries (DDP's `module.`); keys are left alone otherwise."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def key_style(state: Mapping[str, torch.Tensor]) -> str:
    """Which network naming a bare state dict uses: one of the three `LAYOUT_PTV_*`/`LAYOUT_PYSLOWFAST`."""
    keys = list(state)
    if any(_PSF_ANY.match(k) for k in keys):
        return LAYOUT_PYSLOWFAST
    if any(k.startswith(("model.blocks.", _DETECTOR_HEAD_PREFIX)) for k in keys):
        return LAYOUT_PTV_DETECTION
    if any(k.startswith("blocks.") for k in keys):
        return LAYOUT_PTV_CLASSIFICATION
    sample = ", ".join(keys[:3])
    raise _LayoutError(f"tensor names match no supported SlowFast naming (first keys: {sample})")


def _unwrap(obj: Any) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor], Any]:
    """(layout, network state dict, tensors ignored by the unwrapping, container) for a loaded object."""
    if not isinstance(obj, Mapping):
        raise _LayoutError(f"top-level object is a {type(obj).__name__}, not a checkpoint dictionary")
    if "blobs" in obj:
        raise _LayoutError("Caffe2 checkpoint ('blobs'); convert it with PySlowFast first")
    state = obj.get("state_dict")
    if _is_tensor_mapping(state):
        is_lightning = "pytorch-lightning_version" in obj or any(k.startswith(_LIGHTNING_MODEL_PREFIX) for k in state)
        if is_lightning:
            network = {k[len(_LIGHTNING_MODEL_PREFIX):]: v for k, v in state.items()
                       if k.startswith(_LIGHTNING_MODEL_PREFIX)}
            others = {k: v for k, v in state.items() if not k.startswith(_LIGHTNING_MODEL_PREFIX)}
            if not network:
                raise _LayoutError(f"Lightning checkpoint without '{_LIGHTNING_MODEL_PREFIX}*' weights")
            return LAYOUT_LIGHTNING, network, others, obj
        return LAYOUT_STATE_DICT, _strip_prefix(state, "module."), {}, obj
    for container in ("model_state", "model"):
        state = obj.get(container)
        if _is_tensor_mapping(state):
            state = _strip_prefix(state, "module.")
            return key_style(state), state, {}, obj
    if _is_tensor_mapping(obj):
        return LAYOUT_STATE_DICT, _strip_prefix(obj, "module."), {}, obj
    raise _LayoutError(
        "no weights found: expected 'model_state' (pytorchvideo/PySlowFast), 'state_dict' (Lightning) "
        f"or a bare name->tensor mapping; top-level keys: {', '.join(map(str, list(obj)[:8]))}"
    )


def detect_layout(obj: Any) -> str:
    """Name the layout of a loaded checkpoint object (one of the `LAYOUT_*` constants)."""
    try:
        return _unwrap(obj)[0]
    except _LayoutError as error:
        raise UserError(f"checkpoint: {error}") from None


# ---------------------------------------------------------------------------------------------------------
# PySlowFast <-> pytorchvideo key conversion.
# PySlowFast (slowfast/models/video_model_builder.py, resnet_helper.py, stem_helper.py) names modules
#   s1.pathway{p}_stem.{conv,bn}   s{k}_fuse.{conv_f2s,bn} (k=1..4)
#   s{k}.pathway{p}_res{i}.{branch1,branch1_bn,branch2.{a,a_bn,b,b_bn,c,c_bn}} (k=2..5)   head.projection
# pytorchvideo (models/slowfast.py, resnet.py, stem.py) names the same modules
#   blocks.0.multipathway_blocks.{p}.{conv,norm}   blocks.{k-1}.multipathway_fusion.{conv_fast_to_slow,norm}
#   blocks.{k-1}.multipathway_blocks.{p}.res_blocks.{i}.{branch1_conv,branch1_norm,branch2.{conv_a,norm_a,...}}
# Both use the same conv/BN hyper-parameters, so tensors copy one-to-one.

_PARAM = r"(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"
_STEM_LAYERS = {"conv": "conv", "bn": "norm"}
_FUSE_LAYERS = {"conv_f2s": "conv_fast_to_slow", "bn": "norm"}
_RES_LAYERS = {
    "branch1": "branch1_conv", "branch1_bn": "branch1_norm",
    "branch2.a": "branch2.conv_a", "branch2.a_bn": "branch2.norm_a",
    "branch2.b": "branch2.conv_b", "branch2.b_bn": "branch2.norm_b",
    "branch2.c": "branch2.conv_c", "branch2.c_bn": "branch2.norm_c",
}


def _alternation(names: Mapping[str, str] | list[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


# `s{p}_stem` is the spelling of some older stem_helper.py versions; `pathway{p}_stem` the current one.
_PSF_STEM = re.compile(rf"^s1\.(?:pathway|s)(?P<p>\d)_stem\.(?P<layer>{_alternation(_STEM_LAYERS)})\.{_PARAM}$")
_PSF_FUSE = re.compile(rf"^s(?P<k>[1-4])_fuse\.(?P<layer>{_alternation(_FUSE_LAYERS)})\.{_PARAM}$")
_PSF_RES = re.compile(
    rf"^s(?P<k>[2-5])\.pathway(?P<p>\d)_res(?P<i>\d+)\.(?P<layer>{_alternation(_RES_LAYERS)})\.{_PARAM}$"
)
_PSF_HEAD = re.compile(rf"^head\.projection\.{_PARAM}$")
_PSF_ANY = re.compile(r"^(s[1-5](_fuse)?\.|head\.projection\.)")

_PTV_STEM = re.compile(
    rf"^blocks\.0\.multipathway_blocks\.(?P<p>\d)\.(?P<layer>{_alternation(list(_STEM_LAYERS.values()))})\.{_PARAM}$"
)
_PTV_FUSE = re.compile(
    rf"^blocks\.(?P<b>[0-3])\.multipathway_fusion\.(?P<layer>{_alternation(list(_FUSE_LAYERS.values()))})"
    rf"\.{_PARAM}$"
)
_PTV_RES = re.compile(
    rf"^blocks\.(?P<b>[1-4])\.multipathway_blocks\.(?P<p>\d)\.res_blocks\.(?P<i>\d+)\."
    rf"(?P<layer>{_alternation(list(_RES_LAYERS.values()))})\.{_PARAM}$"
)


def pyslowfast_to_pytorchvideo_key(key: str) -> Optional[str]:
    """PySlowFast backbone/head name -> pytorchvideo classifier-style name (`blocks.N...`, head `head.proj.*`).

    Returns None for names with no pytorchvideo counterpart (non-local blocks, sub-batch-norm, ...).
    """
    if m := _PSF_STEM.match(key):
        return f"blocks.0.multipathway_blocks.{m['p']}.{_STEM_LAYERS[m['layer']]}.{m['param']}"
    if m := _PSF_FUSE.match(key):
        return f"blocks.{int(m['k']) - 1}.multipathway_fusion.{_FUSE_LAYERS[m['layer']]}.{m['param']}"
    if m := _PSF_RES.match(key):
        return (f"blocks.{int(m['k']) - 1}.multipathway_blocks.{m['p']}.res_blocks.{m['i']}."
                f"{_RES_LAYERS[m['layer']]}.{m['param']}")
    if m := _PSF_HEAD.match(key):
        return f"head.proj.{m['param']}"
    return None


_STEM_LAYERS_BACK = {v: k for k, v in _STEM_LAYERS.items()}
_FUSE_LAYERS_BACK = {v: k for k, v in _FUSE_LAYERS.items()}
_RES_LAYERS_BACK = {v: k for k, v in _RES_LAYERS.items()}


def pytorchvideo_to_pyslowfast_key(key: str) -> Optional[str]:
    """Inverse of `pyslowfast_to_pytorchvideo_key` for backbone keys (`blocks.N...`) and `head.proj.*`."""
    if m := _PTV_STEM.match(key):
        return f"s1.pathway{m['p']}_stem.{_STEM_LAYERS_BACK[m['layer']]}.{m['param']}"
    if m := _PTV_FUSE.match(key):
        return f"s{int(m['b']) + 1}_fuse.{_FUSE_LAYERS_BACK[m['layer']]}.{m['param']}"
    if m := _PTV_RES.match(key):
        return f"s{int(m['b']) + 1}.pathway{m['p']}_res{m['i']}.{_RES_LAYERS_BACK[m['layer']]}.{m['param']}"
    if m := re.match(rf"^head\.proj\.{_PARAM}$", key):
        return f"head.projection.{m['param']}"
    return None


def to_pyslowfast_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a detector or classifier state dict of ours to PySlowFast names (for export and tests)."""
    canonical = _canonical_from_pytorchvideo(state)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in {**canonical.backbone, **{f"head.{k}": v for k, v in canonical.head.items()}}.items():
        renamed = pytorchvideo_to_pyslowfast_key(key)
        if renamed is None:
            raise UserError(f"state dict key {key!r} has no PySlowFast name")
        out[renamed] = tensor
    return out


# ---------------------------------------------------------------------------------------------------------
# Canonical form


@dataclass
class _Canonical:
    backbone: dict[str, torch.Tensor] = field(default_factory=dict)  # "blocks.{0-4}.…"
    head: dict[str, torch.Tensor] = field(default_factory=dict)  # "proj.weight", "proj.bias"
    head_kind: Optional[str] = None  # DETECTION | CLASSIFICATION | None (unknown: fits either)
    source_names: dict[str, str] = field(default_factory=dict)  # canonical name -> name in the file
    leftovers: list[str] = field(default_factory=list)  # names in the file that map to nothing


_BLOCK_INDEX = re.compile(r"^blocks\.(\d+)\.")


def _canonical_from_pytorchvideo(state: Mapping[str, torch.Tensor]) -> _Canonical:
    result = _Canonical()
    for key, tensor in state.items():
        name = key[len(_DETECTOR_BACKBONE_PREFIX):] if key.startswith("model.blocks.") else key
        if key.startswith(_DETECTOR_HEAD_PREFIX):
            result.head[key[len(_DETECTOR_HEAD_PREFIX):]] = tensor
            result.head_kind = DETECTION
            result.source_names[f"head:{key[len(_DETECTOR_HEAD_PREFIX):]}"] = key
            continue
        match = _BLOCK_INDEX.match(name)
        if match and int(match[1]) < NUM_BACKBONE_BLOCKS:
            result.backbone[name] = tensor
            result.source_names[name] = key
        elif match and ".proj." in name:
            head_key = name[match.end():]
            result.head[head_key] = tensor
            result.head_kind = CLASSIFICATION
            result.source_names[f"head:{head_key}"] = key
        else:
            result.leftovers.append(key)
    return result


def _canonical_from_pyslowfast(state: Mapping[str, torch.Tensor], head_kind: Optional[str]) -> _Canonical:
    result = _Canonical(head_kind=head_kind)
    unconvertible = []
    for key, tensor in state.items():
        name = pyslowfast_to_pytorchvideo_key(key)
        if name is None:
            unconvertible.append(key)
        elif name.startswith("head.proj."):
            result.head[name[len("head."):]] = tensor
            result.source_names[f"head:{name[len('head.'):]}"] = key
        else:
            result.backbone[name] = tensor
            result.source_names[name] = key
    if unconvertible:
        shown = ", ".join(unconvertible[:5]) + (f" (+{len(unconvertible) - 5} more)" if len(unconvertible) > 5 else "")
        raise _LayoutError(
            f"{len(unconvertible)} PySlowFast tensor(s) have no pytorchvideo SlowFast counterpart "
            f"(supported: ResNet bottleneck SlowFast without non-local or sub-batch-norm): {shown}"
        )
    return result


def _pyslowfast_cfg(container: Any) -> dict[str, Any]:
    """PySlowFast stores its config as YAML text under 'cfg'; {} when absent or unreadable."""
    text = container.get("cfg") if isinstance(container, Mapping) else None
    if not isinstance(text, str):
        return {}
    import yaml

    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _pyslowfast_head_kind(container: Any) -> Optional[str]:
    """DETECTION.ENABLE of a PySlowFast config tells the head's kind."""
    detection = _pyslowfast_cfg(container).get("DETECTION", {})
    enabled = detection.get("ENABLE") if isinstance(detection, dict) else None
    if enabled is None:
        return None
    return DETECTION if enabled else CLASSIFICATION


# ---------------------------------------------------------------------------------------------------------
# What a file says about itself: label space and RoIAlign convention

# pytorchvideo's `create_slowfast_with_roi_head` builds torchvision's RoIAlign with aligned=False, and its AVA
# zoo detector was trained and is evaluated that way; PySlowFast's AVA configs default to DETECTION.ALIGNED=True.
PYTORCHVIDEO_ROI_ALIGNED = False
PYSLOWFAST_ROI_ALIGNED = True


def stored_description(obj: Any) -> dict[str, Any]:
    """What one of our files records about its model ({} for foreign files): the one reader of our metadata.

    Our exported `model.pt` keeps it under "seal_transfer" (class ids and names, model config, task, and the
    loss and pose columns when the exporter recorded them); our Lightning `.ckpt` keeps the model config, class ids
    (no names), the loss and the pose columns in Lightning's "hyper_parameters".
    """
    if not isinstance(obj, Mapping):
        return {}
    meta = obj.get("seal_transfer")
    if isinstance(meta, Mapping):
        return {k: meta[k] for k in ("class_ids", "class_names", "model", "task", "loss", "pose_columns", "classes")
                if k in meta}
    hp = obj.get("hyper_parameters")
    if isinstance(hp, Mapping) and "model_cfg" in hp:
        out: dict[str, Any] = {"model": hp["model_cfg"], "lightning": True}
        if "class_ids" in hp:
            out["class_ids"] = hp["class_ids"]
        if "pose_columns" in hp:
            out["pose_columns"] = hp["pose_columns"]
        optim = hp.get("optim_cfg")
        if isinstance(optim, Mapping) and "loss" in optim:
            out["loss"] = optim["loss"]
        return out
    return {}


def stored_description_of(path: Path) -> dict[str, Any]:
    """`stored_description` of a weights file, {} when it cannot be read safely (foreign or pickled formats)."""
    import torch

    try:
        return stored_description(torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # noqa: BLE001 - a file we cannot read this way simply records nothing we know
        return {}


def roi_convention(obj: Any) -> tuple[Optional[bool], str]:
    """(RoIAlign `aligned` flag the file's detector head was trained with, who it comes from); (None, "") when the
    file does not say: a foreign state dict, a classifier, a PySlowFast Kinetics checkpoint."""
    model = stored_description(obj).get("model")
    if isinstance(model, Mapping):
        from seal_transfer.models.config import ModelConfig, resolve

        try:
            return resolve(ModelConfig(**dict(model))).roi_aligned, "a seal_transfer checkpoint"
        except (TypeError, UserError):
            return None, ""
    try:
        layout, network, _, container = _unwrap(obj)
        style = key_style(network)
    except _LayoutError:
        return None, ""
    if layout == LAYOUT_PTV_DETECTION:
        return PYTORCHVIDEO_ROI_ALIGNED, "pytorchvideo's AVA detector"
    if style == LAYOUT_PYSLOWFAST and _pyslowfast_head_kind(container) == DETECTION:
        aligned = _pyslowfast_cfg(container).get("DETECTION", {}).get("ALIGNED", PYSLOWFAST_ROI_ALIGNED)
        return bool(aligned), "a PySlowFast AVA detector"
    return None, ""


def matching_model_config(
    model_cfg: Mapping[str, Any], weights: Optional[str | Path], *, allow_pickle: bool = False
) -> dict[str, Any]:
    """`model_cfg` with `roi_aligned` taken from the weights' origin when the user left it unset (None).

    RoIAlign has no parameters, so nothing in a state dict shows the convention a head was trained with; a
    pytorchvideo zoo detector run with aligned=True scores up to ~0.007 away from pytorchvideo's own inference.
    An explicit `model.roi_aligned` always wins (the load summary then says that it differs).
    """
    out = dict(model_cfg)
    if weights is None or out.get("roi_aligned") is not None:
        return out
    aligned, _ = roi_convention(read_checkpoint(weights, allow_pickle=allow_pickle))
    if aligned is not None:
        out["roi_aligned"] = aligned
    return out


def checkpoint_class_names(path: str | Path, *, allow_pickle: bool = False) -> Optional[list[str]]:
    """Class names, in output-column order, that one of our checkpoints was trained on; None if it does not say."""
    names = stored_description(read_checkpoint(path, allow_pickle=allow_pickle)).get("class_names")
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def _roi_layer_aligned(model: nn.Module) -> Optional[bool]:
    head = getattr(model, "detection_head", None)
    aligned = getattr(getattr(head, "roi_layer", None), "aligned", None)
    return aligned if isinstance(aligned, bool) else None


# ---------------------------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadReport:
    """What `load_weights` did, tensor by tensor (names are the target model's, except `unexpected`)."""

    path: str
    layout: str
    key_style: str
    loaded: list[str] = field(default_factory=list)
    skipped_shape_mismatch: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # names as in the file
    notes: list[str] = field(default_factory=list)
    head_loaded: bool = False
    backbone_total: int = 0
    backbone_loaded: int = 0
    roi_aligned_file: Optional[bool] = None  # RoIAlign convention of the file's origin, when known

    def summary(self) -> str:
        """One paragraph for the CLI log."""
        style = "" if self.key_style == self.layout else f" with {self.key_style} names"
        parts = [
            f"Loaded weights from {self.path} ({self.layout} layout{style}): "
            f"{len(self.loaded)} tensors, backbone {self.backbone_loaded}/{self.backbone_total}, "
            f"head {'loaded' if self.head_loaded else 'left at fresh initialisation'}."
        ]
        parts += self.notes
        if self.skipped_shape_mismatch:
            parts.append(f"{len(self.skipped_shape_mismatch)} skipped for shape mismatch "
                         f"(e.g. {self.skipped_shape_mismatch[0]}).")
        if self.missing:
            parts.append(f"{len(self.missing)} model tensors not in the file (e.g. {self.missing[0]}).")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} file tensors unused (e.g. {self.unexpected[0]}).")
        return " ".join(parts)


def _note_roi_convention(report: LoadReport, obj: Any, model_aligned: Optional[bool]) -> None:
    """Say in the summary when the file's RoIAlign convention is known, and loudly when the model's differs."""
    file_aligned, origin = roi_convention(obj)
    report.roi_aligned_file = file_aligned
    if file_aligned is None or model_aligned is None:
        return
    if file_aligned != model_aligned:
        report.notes.append(
            f"RoIAlign: {origin} was trained with aligned={file_aligned}, but this model runs aligned={model_aligned} "
            "(model.roi_aligned), so its scores differ slightly from the original's; leave model.roi_aligned "
            "unset to match the file."
        )
    elif origin != "a seal_transfer checkpoint":
        report.notes.append(f"RoIAlign runs with aligned={model_aligned}, as {origin} was trained.")


def _target_layout(model: nn.Module) -> tuple[str, str, str]:
    """(kind, backbone prefix, head prefix) of one of our models, read from its state-dict names."""
    keys = list(model.state_dict())
    if any(k.startswith(_DETECTOR_HEAD_PREFIX) for k in keys):
        return DETECTION, _DETECTOR_BACKBONE_PREFIX, _DETECTOR_HEAD_PREFIX
    head_blocks = sorted({int(m[1]) for k in keys if (m := _BLOCK_INDEX.match(k)) and ".proj." in k})
    if head_blocks:
        return CLASSIFICATION, "", f"blocks.{head_blocks[-1]}."
    raise UserError(f"load_weights: {type(model).__name__} is not a SlowFast model from seal_transfer.models")


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    allow_pickle: bool = False,
    strict_backbone: bool = False,
) -> LoadReport:
    """Copy every matching tensor of a local checkpoint into `model` (in place) and report the rest.

    The backbone always transfers between detector and classifier; the head loads only into the same kind
    of head with the same shape (a class-count change keeps the fresh head). `strict_backbone=True` turns
    any backbone tensor that is missing or mis-shaped into a UserError. A file from which no backbone
    weight loads is always an error: it means the wrong model or the wrong file.
    """
    path = Path(path)
    obj = read_checkpoint(path, allow_pickle=allow_pickle)
    try:
        layout, network, others, container = _unwrap(obj)
        style = key_style(network)
        if style == LAYOUT_PYSLOWFAST:
            canonical = _canonical_from_pyslowfast(network, _pyslowfast_head_kind(container))
        else:
            canonical = _canonical_from_pytorchvideo(network)
    except _LayoutError as error:
        raise UserError(f"{path}: {error}") from None
    prefix_back = _LIGHTNING_MODEL_PREFIX if layout == LAYOUT_LIGHTNING else ""
    report = LoadReport(path=str(path), layout=layout, key_style=style)
    report.unexpected += [prefix_back + k for k in canonical.leftovers] + list(others)

    kind, backbone_prefix, head_prefix = _target_layout(model)
    if kind == DETECTION:
        _note_roi_convention(report, obj, _roi_layer_aligned(model))
    target = model.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    used_sources: set[str] = set()

    def offer(target_key: str, canonical_key: str, tensor: Optional[torch.Tensor]) -> None:
        if tensor is None:
            report.missing.append(target_key)
            return
        used_sources.add(canonical_key)
        wanted = tuple(target[target_key].shape)
        if tuple(tensor.shape) != wanted:
            report.skipped_shape_mismatch.append(
                f"{target_key} (file {list(tensor.shape)} vs model {list(wanted)})"
            )
            return
        to_load[target_key] = tensor
        report.loaded.append(target_key)

    backbone_keys = [k for k in target if k.startswith(backbone_prefix + "blocks.")
                     and not k.startswith(head_prefix)]
    head_keys = [k for k in target if k.startswith(head_prefix)]
    for key in backbone_keys:
        name = key[len(backbone_prefix):]
        offer(key, name, canonical.backbone.get(name))
    unused_backbone = [n for n in canonical.backbone if n not in used_sources]

    head_compatible = canonical.head_kind in (None, kind)
    if canonical.head and canonical.head_kind is None:
        report.notes.append(f"The file does not say what its head was trained for; it was treated as a {kind} head.")
    if canonical.head and not head_compatible:
        report.notes.append(f"The file's {canonical.head_kind} head does not fit a {kind} model and was ignored.")
        for key in head_keys:
            report.missing.append(key)
    else:
        for key in head_keys:
            name = key[len(head_prefix):]
            offer(key, f"head:{name}", canonical.head.get(name))
        head_mismatch = [k for k in head_keys if any(s.startswith(k + " ") for s in report.skipped_shape_mismatch)]
        if head_mismatch:
            report.notes.append("The head's shape differs (different class count).")
    report.head_loaded = bool(head_keys) and all(k in to_load for k in head_keys)
    unused_head = [f"head:{n}" for n in canonical.head if f"head:{n}" not in used_sources]
    report.unexpected += [prefix_back + canonical.source_names.get(n, n) for n in unused_backbone + unused_head]

    backbone_params = [k for k in backbone_keys if target[k].ndim > 0]
    report.backbone_total = len(backbone_keys)
    report.backbone_loaded = sum(k in to_load for k in backbone_keys)
    if not any(k in to_load for k in backbone_params):
        raise UserError(
            f"{path}: no backbone weight of this {style} checkpoint fits the model "
            f"({len(report.skipped_shape_mismatch)} shape mismatches, {len(report.missing)} missing) - "
            "wrong model preset or wrong file?"
        )
    if strict_backbone:
        bad_backbone = [k for k in backbone_keys if k not in to_load]
        if bad_backbone:
            raise UserError(
                f"{path}: strict_backbone: {len(bad_backbone)} backbone tensor(s) missing or mis-shaped, "
                f"e.g. {bad_backbone[0]}"
            )

    with torch.no_grad():
        result = model.load_state_dict(to_load, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # every key in to_load came from the model
    return report
