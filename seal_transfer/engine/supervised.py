"""One supervised detection job (pretrain on SEAL Clips, finetune on AVA, one adaptation round): train with
Lightning, evaluate frame-mAP on the validation split, and leave the stage's files in its output folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seal_transfer.data.datamodules import KeyframeDataModule, KeyframeSplit
from seal_transfer.data.formats.ava import AvaTable, LabelMap, write_ava_csv, write_exclusions, write_labelmap
from seal_transfer.engine.detection import DetectionModule
from seal_transfer.engine.fit import (
    build_trainer,
    export_weights,
    quiet_lightning,
    resume_checkpoint,
    run_fit,
    throughput_of,
)
from seal_transfer.evaluation.metric import FrameMAP
from seal_transfer.models.checkpoints import load_weights, matching_model_config, stored_description_of
from seal_transfer.models.config import resolve
from seal_transfer.rundir import VAL_DETECTIONS, VAL_EXCLUSIONS, VAL_GROUNDTRUTH, VAL_LABELMAP, WEIGHTS


@dataclass
class DetectionJob:
    """Everything one training job needs; built by the stage CLIs from the config and the run directory."""

    name: str
    out_dir: Path
    train: KeyframeSplit
    val: Optional[KeyframeSplit]
    labelmap: LabelMap  # the model's output classes, in column order
    eval_class_ids: list[int]  # classes that count towards frame-mAP
    val_gt: Optional[AvaTable] = None  # GT rows frame-mAP scores against (defaults to the val split's rows)
    init: Optional[Path] = None  # weights to start from when not resuming
    extra_metrics: Optional[Callable[[dict[int, float]], dict[str, float]]] = None  # e.g. Table 3 buckets
    meta: dict[str, Any] = field(default_factory=dict)
    loss_weight: str = "hard"  # "score": each box's loss weighted by its label score (adapt.loss_weight)
    callbacks: list[Any] = field(default_factory=list)  # extra Lightning callbacks (e.g. engine.ema.EmaWeights)


def pose_columns(labelmap: LabelMap, pose_type: str) -> list[int]:
    return [i for i, cid in enumerate(labelmap.ids) if labelmap.types.get(cid) == pose_type]


def detections_table(split: KeyframeSplit, class_ids: list[int], box_ids: np.ndarray, scores: np.ndarray) -> AvaTable:
    """Every (box, class) pair as one AVA detection row; `scores` has one column per entry of `class_ids`."""
    return AvaTable.from_box_scores(split.boxes_table(box_ids), scores.reshape(len(box_ids), len(class_ids)),
                                    class_ids)


def data_problems(splits: list[KeyframeSplit]) -> dict[str, Any]:
    """What the datasets of a stage left out, for metrics.json: `skipped_keyframes` (keyframes of usable videos
    whose clip could not be decoded as asked), `broken_videos` (names of unusable videos) and the first few
    reasons. Skipped validation keyframes get no detections; their GT rows still count in frame-mAP, as misses."""
    names = sorted({vid for split in splits for vid in split.broken_video_ids})
    reasons = [line for split in splits for line in split.broken_videos[:3] + split.skipped_keyframes[:3]]
    return {
        "skipped_keyframes": sum(len(split.skipped_keyframes) for split in splits),
        "broken_videos": names,
        "data_problems": reasons[:10],
    }


def _is_head_key(key: str) -> bool:
    return key.startswith("detection_head.proj.") or key.startswith("blocks.6.proj.")


def _same_label_space(weights: Path, labelmap: LabelMap) -> bool:
    """True unless the weights file records class names that differ from `labelmap` (our exported model.pt does)."""
    names = stored_description_of(weights).get("class_names")  # foreign formats record none
    return names is None or list(names) == [labelmap.names[c] for c in labelmap.ids]


class FrameMapValidation:
    """Validation of one job: per-box scores → `evaluation.metric.FrameMAP` (the official AVA frame-mAP, gathered
    across DDP ranks by torchmetrics, each box once) + the detection CSV, written by rank 0.

    Box ids are the metric's sample index: one prediction per box id, so DistributedSampler's padding copies are
    dropped and the CSV lists boxes in id order for any world size.
    """

    def __init__(self, job: DetectionJob, is_global_zero: Callable[[], bool]) -> None:
        assert job.val is not None
        self.job = job
        self.is_global_zero = is_global_zero
        column = job.labelmap.index_of()
        missing = [c for c in job.eval_class_ids if c not in column]
        if missing:
            raise ValueError(f"{job.name}: evaluated classes {missing[:5]} are not outputs of the model")
        self.columns = torch.as_tensor([column[c] for c in job.eval_class_ids], dtype=torch.long)
        val = job.val
        boxes = val.boxes_table(np.arange(val.index.num_boxes))
        gt = job.val_gt if job.val_gt is not None else val.split.table
        keyframes = dict.fromkeys(gt.keyframe_keys())  # the GT's keyframes, then any that only the boxes have
        keyframes.update(dict.fromkeys(zip(boxes.video_ids.tolist(), boxes.timestamps.tolist())))
        self.metric = FrameMAP(gt, job.eval_class_ids, keyframes=list(keyframes), exclusions=val.split.exclusions)
        self.box_keyframe = self.metric.keyframe_id_tensor(zip(boxes.video_ids.tolist(), boxes.timestamps.tolist()))
        self.box_coords = torch.from_numpy(boxes.boxes)
        self.gt = gt
        self.last: dict[str, Any] = {}
        self._wrote_truth = False

    def _write_truth(self) -> None:
        """The GT rows, exclusions and classes the detections are scored against, beside them, in AVA formats."""
        job = self.job
        assert job.val is not None
        write_ava_csv(job.out_dir / VAL_GROUNDTRUTH, self.gt, "gt")
        write_exclusions(job.out_dir / VAL_EXCLUSIONS, job.val.split.exclusions)
        write_labelmap(job.out_dir / VAL_LABELMAP, job.labelmap.subset(job.eval_class_ids), layout="label")
        self._wrote_truth = True

    def reset(self) -> None:
        self.metric.reset()

    def update(self, box_ids: torch.Tensor, scores: torch.Tensor) -> None:
        if self.metric.device != scores.device:  # the gather runs on the training device (NCCL needs CUDA)
            self.metric.to(scores.device)
        ids = box_ids.cpu()
        self.metric.update(
            self.box_keyframe[ids], self.box_coords[ids], scores[:, self.columns.to(scores.device)], sample_index=ids
        )

    def compute(self) -> dict[str, float]:
        job = self.job
        assert job.val is not None
        value = float(self.metric.compute())
        per_class = self.metric.per_class_ap
        gathered = self.metric.predictions
        assert gathered is not None
        metrics = {"val/mAP": value}
        if job.extra_metrics is not None:
            metrics.update({f"val/{k}": v for k, v in job.extra_metrics(per_class).items()})
        if self.is_global_zero():
            if not self._wrote_truth:
                self._write_truth()
            dets = detections_table(job.val, job.eval_class_ids, gathered.sample_index, gathered.scores)
            write_ava_csv(job.out_dir / VAL_DETECTIONS, dets, "detections")
        self.last = {
            "metrics": metrics,
            "per_class": {str(k): (None if v != v else float(v)) for k, v in per_class.items()},
            "num_val_boxes": int(gathered.sample_index.size),
        }
        self.metric.reset()
        return metrics


def model_config_for(cfg: Any, weights: Optional[Path], what: str) -> dict[str, Any]:
    """`cfg.model` as a dict, with the RoIAlign convention of `weights` when `model.roi_aligned` is unset.

    Decided from the init file alone, so a resumed job builds the same network as the interrupted one; the
    exported model.pt records the value, so the next stage keeps it.
    """
    model_cfg = matching_model_config(
        asdict(cfg.model), weights, allow_pickle=bool(cfg.allow_pickle_checkpoints)
    )
    preset = resolve(cfg.model).roi_aligned
    if model_cfg.get("roi_aligned") is not None and model_cfg["roi_aligned"] != preset:
        print(f"[{what}] RoIAlign aligned={model_cfg['roi_aligned']}, the convention {weights} was trained with "
              f"(the preset says {preset}; set model.roi_aligned to choose)")
    return model_cfg


def run_detection_job(cfg: Any, job: DetectionJob) -> dict[str, Any]:
    """Train (resuming from `last.ckpt` if present), validate, export `model.pt`; returns the metrics dict."""
    quiet_lightning()
    import lightning as L

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model_cfg = model_config_for(cfg, job.init, job.name)
    module = DetectionModule(
        model_cfg=model_cfg,
        optim_cfg=asdict(cfg.optim),
        num_classes=len(job.labelmap),
        pose_columns=pose_columns(job.labelmap, cfg.optim.pose_label_type),
        class_ids=job.labelmap.ids,
        loss_weight=job.loss_weight,
    )
    resume = resume_checkpoint(job.out_dir, announce=job.name)
    load_report = None
    if resume is None and job.init is not None:
        fresh_head = {k: v.clone() for k, v in module.model.state_dict().items() if _is_head_key(k)}
        load_report = load_weights(module.model, job.init, allow_pickle=bool(cfg.allow_pickle_checkpoints))
        print(f"[{job.name}] init from {job.init}: {load_report.summary()}")
        if not _same_label_space(job.init, job.labelmap):
            # Same class count but other classes (e.g. SEAL's atomic actions → AVA's): a loaded head would be
            # meaningless, so the head restarts from its fresh initialisation.
            module.model.load_state_dict(fresh_head, strict=False)
            print(f"[{job.name}] classifier head re-initialised: {job.init} was trained on another label space")
    datamodule = KeyframeDataModule(
        job.train.dataset, job.val.dataset if job.val else None, int(cfg.data.batch_size), int(cfg.data.num_workers)
    )
    monitor = "val/mAP" if job.val is not None else None
    trainer = build_trainer(
        cfg, job.out_dir, monitor=monitor, extra_callbacks=job.callbacks,
        limit_val_batches=cfg.trainer.limit_val_batches if job.val is not None else 0,
    )
    evaluator = FrameMapValidation(job, lambda: trainer.is_global_zero) if job.val is not None else None
    module.validation = evaluator
    started = time.time()
    run_fit(trainer, module, datamodule, job.out_dir, resume, validate=job.val is not None)
    metrics: dict[str, Any] = {
        "stage": job.name,
        "train_keyframes": len(job.train.dataset),
        "train_boxes": int(job.train.index.num_boxes),
        **data_problems([job.train] + ([job.val] if job.val else [])),
        "epochs": int(trainer.current_epoch),
        "wall_time_s": round(time.time() - started, 1),
        "num_classes": len(job.labelmap),
        **throughput_of(trainer),
    }
    if evaluator is not None and evaluator.last:
        metrics.update({k.replace("val/", ""): v for k, v in evaluator.last["metrics"].items()})
        metrics["per_class_AP"] = evaluator.last["per_class"]
        metrics["val_keyframes"] = len(job.val.dataset) if job.val else 0
    if job.init is not None:  # also when resumed from last.ckpt, so a resumed run reports what a fresh one does
        metrics["init"] = str(job.init)
    if trainer.is_global_zero:
        export_weights(
            module,
            job.out_dir / WEIGHTS,
            {
                "class_ids": list(job.labelmap.ids),
                "class_names": [job.labelmap.names[c] for c in job.labelmap.ids],
                "model": model_cfg,
                # How scores are read off the logits (sigmoid, or softmax over the pose columns): a scorer built
                # from this file (demo, tube features) must score as validation did.
                "loss": str(cfg.optim.loss),
                "pose_columns": [int(c) for c in module.pose_columns.tolist()],
                **job.meta,
            },
        )
    if trainer.world_size > 1:
        trainer.strategy.barrier("model.pt exported")  # other ranks go on to read it (next round, next stage)
    return metrics
