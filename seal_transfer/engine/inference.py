"""Inference from a finished stage's weights: a checkpoint becomes a `Scorer` (the detector it describes, its
weights, its class names and how to turn logits into scores), and one keyframe's clip and boxes become scores.
What the demo (and any other consumer of a trained detector) builds on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seal_transfer.data.clip import pack_pathways
from seal_transfer.errors import UserError
from seal_transfer.rundir import CONFIG


@dataclass
class Scorer:
    """A detector ready to score boxes, with the names of its output columns."""

    model: torch.nn.Module
    class_ids: list[int]
    class_names: list[str]
    model_cfg: dict[str, Any]
    loss: str = "bce"
    pose_columns: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> int:
        """Fast/slow frame ratio of the detector's pathways (from its resolved model config)."""
        return resolved_model_config(self.model_cfg).alpha


def _checkpoint_description(obj: Any, path: Path) -> tuple[dict[str, Any], list[int], Optional[list[str]], str,
                                                             list[int]]:
    """(model config, class ids, class names or None, loss, pose columns) from our model.pt or a Lightning .ckpt."""
    from seal_transfer.models.checkpoints import stored_description

    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a checkpoint dictionary")
    meta = stored_description(obj)
    if "model" in meta and (meta.get("class_ids") or ("class_ids" in meta and not meta.get("lightning"))):
        names = meta.get("class_names")
        return (dict(meta["model"]), [int(c) for c in meta["class_ids"]], list(names) if names else None,
                str(meta.get("loss", "bce")), [int(c) for c in meta.get("pose_columns", [])])
    if meta.get("lightning") and "class_ids" in meta:
        raise UserError(f"{path}: the Lightning checkpoint records no class ids")
    if meta.get("lightning"):
        raise UserError(f"{path}: a clip classifier checkpoint (task=classification); the demo needs a detector "
                        "(RUN/pretrain, RUN/adapt or RUN/finetune of the detection task)")
    raise UserError(f"{path}: no model description in the checkpoint; pass a model.pt exported by a stage "
                    "(RUN/<stage>/model.pt) or a Lightning checkpoint from RUN/<stage>/checkpoints/")


def load_scorer(path: str | Path, *, labelmap: Optional[str | Path] = None, allow_pickle: bool = False,
                    device: str = "cpu") -> Scorer:
    """Build the detector a checkpoint describes and load its weights; names from the checkpoint or `labelmap`."""
    from seal_transfer.data.formats.ava import read_labelmap
    from seal_transfer.models.checkpoints import load_weights, read_checkpoint
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    path = Path(path)
    obj = read_checkpoint(path, allow_pickle=allow_pickle)
    model_cfg, class_ids, names, loss, pose_columns = _checkpoint_description(obj, path)
    notes: list[str] = []
    if labelmap is not None:
        lm = read_labelmap(labelmap)
        unknown = [c for c in class_ids if c not in lm.names]
        if unknown:
            raise UserError(f"--labelmap {labelmap}: class id(s) {unknown[:5]} of the checkpoint are not in it")
        names = [lm.names[c] for c in class_ids]
    if names is None:
        names = [f"class {c}" for c in class_ids]
        notes.append("the checkpoint stores no class names; pass --labelmap PBTXT to show them")
    try:
        model = build_detector(ModelConfig(**model_cfg), len(class_ids))
    except TypeError as exc:
        raise UserError(f"{path}: model config in the checkpoint is not one this version understands ({exc})") from None
    report = load_weights(model, path, allow_pickle=allow_pickle)
    if not report.head_loaded:
        raise UserError(f"{path}: the detection head did not load ({report.summary()})")
    model.eval().to(device)
    return Scorer(model, class_ids, [str(n) for n in names], model_cfg, loss, pose_columns, notes)


def stage_augment(checkpoint: Path) -> dict[str, Any]:
    """`data.augment` of the stage that wrote the checkpoint (RUN/<stage>/config.yaml), so the demo resizes and
    normalises frames as validation did; {} when there is none."""
    import yaml

    for folder in (checkpoint.parent, checkpoint.parent.parent):
        cfg_path = folder / CONFIG
        if cfg_path.is_file():
            try:
                cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                return {}
            augment = (cfg.get("data") or {}).get("augment") if isinstance(cfg, dict) else None
            return dict(augment) if isinstance(augment, dict) else {}
    return {}


def resolved_model_config(model_cfg: dict[str, Any]) -> Any:
    from seal_transfer.models.config import ModelConfig, resolve

    return resolve(ModelConfig(**model_cfg))


def score_keyframe(scorer: Scorer, clip: torch.Tensor, box_px: torch.Tensor, device: str) -> np.ndarray:
    """(K, C) class scores of the K boxes (pixels, in the transformed clip) of one keyframe's fast-pathway clip."""
    from seal_transfer.engine.detection import detection_scores

    slow, fast = pack_pathways(clip, scorer.alpha)
    rois = torch.cat([torch.zeros(len(box_px), 1), box_px], dim=1).to(device)
    pose = torch.as_tensor(scorer.pose_columns, dtype=torch.long).to(device)
    with torch.inference_mode():
        logits = scorer.model([slow[None].to(device), fast[None].to(device)], rois)
        return detection_scores(logits, pose, scorer.loss).cpu().numpy()
