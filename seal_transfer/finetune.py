"""`python -m seal_transfer.finetune`: supervised training on the target domain (AVA format), evaluated with
AVA frame-mAP@0.5 on the evaluation label map. Starts from RUN/adapt (or RUN/pretrain, or `init=`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.data.domains import (
    check_real_roots,
    ignored_eval_rows,
    load_target_split,
    restrict_to_labelled_videos,
)
from seal_transfer.models.config import clip_spec
from seal_transfer.stage import resolve_init, run_stage

SECTIONS = ("run_dir", "init", "seed", "force", "allow_pickle_checkpoints", "data", "model", "optim", "trainer")
DESCRIPTION = "Finetune SlowFast + RoI head on the target domain (AVA layout) and report frame-mAP@0.5."


def finetune(cfg: Any) -> int:
    check_real_roots(cfg, "target")

    def work(out_dir: Path) -> dict[str, Any]:
        # Torch and Lightning load here, not at import: `--help` and config errors answer in under a second.
        from seal_transfer.data.datamodules import make_keyframe_split
        from seal_transfer.engine.supervised import DetectionJob, run_detection_job

        init, origin = resolve_init(cfg, "finetune")
        print(f"[finetune] starting from {origin}")
        train_split = load_target_split(cfg, "train")
        fraction = float(cfg.data.target.label_fraction)
        all_videos = len(train_split.video_paths)
        if fraction < 1.0:
            subset_seed = cfg.data.target.label_subset_seed
            train_split = restrict_to_labelled_videos(
                train_split, fraction, int(cfg.seed if subset_seed is None else subset_seed)
            )
            print(f"[finetune] label_fraction={fraction}: training on {len(train_split.video_paths)} of "
                  f"{all_videos} labelled train videos")
        val_gt = load_target_split(cfg, "val")
        # Validation boxes: GT boxes, or a person detector's boxes (scored against the same GT rows).
        use_detector = cfg.data.target.val_boxes is not None
        val_split = load_target_split(cfg, "val", boxes="detector") if use_detector else val_gt
        train = make_keyframe_split(cfg, train_split, clip=clip_spec(cfg.model), train=True, what="target train")
        val = make_keyframe_split(cfg, val_split, clip=clip_spec(cfg.model), train=False, labelled=not use_detector,
                                  what="target val")
        eval_ids = [c for c in val_gt.eval_labelmap.ids if c in set(train_split.labelmap.ids)]
        unknown, not_evaluated, first_unknown = ignored_eval_rows(val_gt.table, train_split.labelmap, eval_ids)
        if unknown or not_evaluated:  # frame-mAP ignores both, as the official evaluator does: say how many
            print(
                f"[finetune] target val: frame-mAP ignores, as the official evaluator does, {unknown} GT rows whose "
                f"action id is not in {train_split.labelmap.source}" + (f" (first: {first_unknown})" if unknown else "")
                + f" and {not_evaluated} rows of classes that are not evaluated ({len(eval_ids)} are)"
            )
        job = DetectionJob(
            "finetune",
            out_dir,
            train,
            val,
            train_split.labelmap,
            eval_ids,
            val_gt=val_gt.table,
            init=init,
            meta={"domain": "target"},
        )
        metrics = run_detection_job(cfg, job)
        metrics["init_from"] = origin
        metrics["label_fraction"] = fraction
        metrics["labelled_train_videos"] = len(train_split.video_paths)
        metrics["train_videos_total"] = all_videos
        metrics["val_gt_rows_unknown_action"] = unknown
        metrics["val_gt_rows_not_evaluated"] = not_evaluated
        return metrics

    return run_stage(cfg, "finetune", work)


main = stage_main("seal_transfer.finetune", DESCRIPTION, SECTIONS, finetune)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
