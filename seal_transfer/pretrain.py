"""`python -m seal_transfer.pretrain`: SlowFast + RoI head on SEAL Clips (atomic actions), reported in the form
of the paper's Table 3 (frame-mAP over classes bucketed by training frequency). `task=classification` trains
the same backbone as a clip classifier on the generic clip set instead (the 'Kinetics' row of Table 5)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.data.domains import check_real_roots, class_frequencies, load_source_split
from seal_transfer.evaluation.clip_map import bucket_classes, bucketed_map
from seal_transfer.models.config import clip_spec
from seal_transfer.stage import resolve_init, run_stage

SECTIONS = (
    "run_dir",
    "init",
    "seed",
    "force",
    "task",
    "allow_pickle_checkpoints",
    "data",
    "model",
    "optim",
    "trainer",
    "buckets",
)
DESCRIPTION = (
    "Pretrain SlowFast + RoI head on SEAL Clips (default: the synthetic source domain), or a clip "
    "classifier on the generic clip set with task=classification."
)


def pretrain(cfg: Any) -> int:
    check_real_roots(cfg, "generic" if cfg.task == "classification" else "source")
    if cfg.task == "classification":
        from seal_transfer.engine.classification import run_classification_pretrain

        return run_stage(cfg, "pretrain", lambda out_dir: run_classification_pretrain(cfg, out_dir))

    def work(out_dir: Path) -> dict[str, Any]:
        # Torch and Lightning load here, not at import: `--help` and config errors answer in under a second.
        from seal_transfer.data.datamodules import make_keyframe_split
        from seal_transfer.engine.supervised import DetectionJob, run_detection_job

        init, origin = resolve_init(cfg, "pretrain")
        print(f"[pretrain] starting from {origin}")
        train_split = load_source_split(cfg, "train", dense=True)
        val_split = load_source_split(cfg, "val", dense=False)
        train = make_keyframe_split(cfg, train_split, clip=clip_spec(cfg.model), train=True, what="SEAL Clips train")
        val = make_keyframe_split(cfg, val_split, clip=clip_spec(cfg.model), train=False, what="SEAL Clips val")
        counts = class_frequencies(train_split.table)
        bucket_cfg = cfg.buckets
        buckets = bucket_classes(counts, bucket_cfg)

        def table3(per_class: dict[int, float]) -> dict[str, float]:
            return bucketed_map(per_class, buckets)

        job = DetectionJob(
            "pretrain",
            out_dir,
            train,
            val,
            train_split.labelmap,
            list(train_split.labelmap.ids),
            init=init,
            extra_metrics=table3,
            meta={"domain": "source", "box_density": str(cfg.data.source.clips.box_density)},
        )
        metrics = run_detection_job(cfg, job)
        metrics["init_from"] = origin
        metrics["box_density"] = str(cfg.data.source.clips.box_density)
        metrics["buckets"] = {name: list(ids) for name, ids in buckets.items()}
        if cfg.data.source.train_clips is not None or cfg.data.source.val_clips is not None:
            metrics["source_rows"] = {"train": train_split.counts, "val": val_split.counts}
        return metrics

    return run_stage(cfg, "pretrain", work)


main = stage_main("seal_transfer.pretrain", DESCRIPTION, SECTIONS, pretrain)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
