"""`python -m seal_transfer.tubes [extract|train|evaluate|all]`: SEAL Tubes temporal detection (paper Table 4).

extract   tubelet features of every train/val tube for the streams the experiments use: Slowfast-T from the
          SEAL-Clips-pretrained model (`init=` or RUN/pretrain/model.pt), the second ('TSP-T') stream from
          `tubes.second_stream_init` (any SlowFast checkpoint; unset = a seeded random backbone)
train     one temporal detector per experiment (tubes.experiments, e.g. aa:slowfast, ca:second+slowfast)
evaluate  per-tube average mAP over tIoU 0.5:0.05:0.95, overall and per class-frequency bucket → metrics.json
The sub-command is the same as `tubes.step=...`; without one, all three run.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.errors import UserError
from seal_transfer.rundir import CHECKPOINTS, METRICS, WEIGHTS

SECTIONS = ("run_dir", "init", "seed", "force", "allow_pickle_checkpoints", "data", "model", "trainer", "tubes")
DESCRIPTION = ("SEAL Tubes temporal action detection (Table 4): tubelet features (extract), per-tube temporal "
               "detector (train), tIoU mAP (evaluate). Sub-command extract|train|evaluate|all or tubes.step=...")
STAGE = "tubes"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _load_split(cfg: Any, split: str) -> tuple[Any, dict[str, Path]]:
    from seal_transfer.data.datasets import find_video
    from seal_transfer.data.domains import source_root
    from seal_transfer.data.formats.ava import read_labelmap
    from seal_transfer.data.formats.seal import read_seal_tubes

    s = cfg.data.source
    root = source_root(cfg)
    labelmap_path = root / s.labelmap
    if not labelmap_path.is_file():
        raise UserError(f"{labelmap_path}: file not found (config key 'data.source.labelmap')")
    if getattr(s, f"{split}_tubes") is None:
        raise UserError(f"config key 'data.source.{split}_tubes' is null: the tubes stage needs SEAL Tubes (a SEAL "
                        "Clips file has no tubelets)")
    tubes_json = root / getattr(s, f"{split}_tubes")
    if not tubes_json.is_file():
        raise UserError(f"{tubes_json}: file not found (config key 'data.source.{split}_tubes')")
    boxes = tubes_json.with_name(tubes_json.stem + "_boxes.npz")
    tubes = read_seal_tubes(tubes_json, boxes, read_labelmap(labelmap_path))
    paths = {vid: find_video(root / s.video_dir, vid) for vid in tubes.videos}
    return tubes, paths


def _stream_weights(cfg: Any, tc: Any, stream: str) -> tuple[Optional[Path], str]:
    from seal_transfer.stage import resolve_init

    if stream == "slowfast":
        weights, origin = resolve_init(cfg, STAGE)
        if weights is None:
            raise UserError("Slowfast-T features need the SEAL-Clips-pretrained model: run "
                            "`python -m seal_transfer.pretrain run_dir=...` first (same run_dir) or pass init=PATH")
        return weights, origin
    if tc.second_stream_init is None:
        return None, f"random initialisation (seed {int(cfg.seed) + 1}; set tubes.second_stream_init=PATH)"
    path = Path(tc.second_stream_init).expanduser()
    if not path.is_file():
        raise UserError(f"tubes.second_stream_init={tc.second_stream_init}: file not found")
    return path, f"tubes.second_stream_init={path}"


def extract(cfg: Any, tc: Any, streams: Sequence[str], splits: dict[str, Any], out_dir: Path, device: str
            ) -> dict[str, Any]:
    import torch

    from seal_transfer.models.checkpoints import load_weights
    from seal_transfer.models.config import clip_spec, resolve
    from seal_transfer.models.slowfast import build_detector
    from seal_transfer.tad.dataset import tube_refs
    from seal_transfer.tad.features import TubeletEncoder, extract_stream

    augment = cfg.data.augment
    refs = [r for tubes, paths in splits.values() for r in tube_refs(tubes, paths)]
    report: dict[str, Any] = {}
    for stream in streams:
        weights, origin = _stream_weights(cfg, tc, stream)
        print(f"[tubes] {stream} stream from {origin}")
        torch.manual_seed(int(cfg.seed) + (0 if stream == "slowfast" else 1))
        detector = build_detector(cfg.model, num_classes=1)  # the head is unused: features are taken before it
        if weights is not None:
            loaded = load_weights(detector, weights, allow_pickle=bool(cfg.allow_pickle_checkpoints))
            print(f"[tubes] {loaded.summary()}")
        resolved = resolve(cfg.model)
        stream_cfg = getattr(tc, stream)
        signature = {"weights": f"sha256:{_file_digest(weights)}" if weights else f"random:{int(cfg.seed) + 1}",
                     "model": resolved.to_dict(), "short_side": stream_cfg.short_side or augment.eval_short_side,
                     "mean": list(augment.mean), "std": list(augment.std)}
        started = time.time()
        result = extract_stream(
            refs, TubeletEncoder(detector, resolved.alpha), stream_cfg, out_dir / "features" / stream, augment,
            signature=signature, model_frames=clip_spec(cfg.model).num_frames,
            batch_windows=tc.batch_windows, chunk_windows=tc.chunk_windows, num_workers=int(cfg.data.num_workers),
            dtype=tc.feature_dtype, overwrite=tc.overwrite_features, device=device, progress=tc.progress,
            desc=f"{stream} features",
        )
        failed_fraction = len(result.failed) / max(len(refs), 1)
        if failed_fraction > float(cfg.data.max_broken_fraction):
            raise UserError(f"{len(result.failed)} of {len(refs)} tubes failed feature extraction "
                            f"(more than data.max_broken_fraction={cfg.data.max_broken_fraction}), e.g. "
                            f"{result.failed[0]}")
        for failure in result.failed[:5]:
            print(f"[tubes] warning: skipped {failure}")
        report[stream] = {**result.to_json(), "weights": origin, "seconds": round(time.time() - started, 1)}
        print(f"[tubes] {stream}: {result.written} tubes written, {result.skipped} already there, "
              f"{len(result.failed)} failed, {result.channels} channels")
    return report


def run(cfg: Any) -> int:
    from seal_transfer.data.domains import check_real_roots
    from seal_transfer.stage import run_stage
    from seal_transfer.tad.config import TASK_TITLES, parse_experiment
    from seal_transfer.tad.dataset import task_split
    from seal_transfer.tad.evaluate import evaluate_experiment
    from seal_transfer.tad.train import resolve_device, train_experiment
    from seal_transfer.utils.fileio import atomic_write, write_json

    check_real_roots(cfg, "source")
    tc = cfg.tubes
    device = resolve_device(tc.device)
    experiments = [parse_experiment(e) for e in tc.experiments]
    step = tc.step

    def work(out_dir: Path) -> dict[str, Any]:
        started = time.time()
        splits = {split: _load_split(cfg, split) for split in ("train", "val")}
        metrics: dict[str, Any] = {"stage": STAGE, "step": step, "device": device}
        if step in ("extract", "all"):
            streams = [s for s in ("slowfast", "second") if any(s in e.streams for e in experiments)]
            metrics["extraction"] = extract(cfg, tc, streams, splits, out_dir, device)
        tasks = {e.task: (task_split(splits["train"][0], e.task), task_split(splits["val"][0], e.task))
                 for e in experiments}
        if step in ("train", "all"):
            for exp in experiments:
                exp_dir = out_dir / exp.name
                if cfg.force:
                    (exp_dir / WEIGHTS).unlink(missing_ok=True)
                    shutil.rmtree(exp_dir / CHECKPOINTS, ignore_errors=True)
                if (exp_dir / WEIGHTS).is_file():
                    print(f"[tubes] {exp.name}: already trained ({exp_dir / 'model.pt'})")
                    continue
                print(f"[tubes] training {exp.name} ({TASK_TITLES[exp.task]}, {exp.features_title})")
                info = train_experiment(cfg, tc, exp, tasks[exp.task][0], out_dir / "features", exp_dir)
                write_json(exp_dir / "train.json", info)
        if step in ("evaluate", "all"):
            rows = {}
            for exp in experiments:
                train, val = tasks[exp.task]
                result = evaluate_experiment(tc, exp, train, val, out_dir / "features", out_dir / exp.name, device)
                rows[exp.name] = result
                for key, value in result.items():
                    if isinstance(value, float):
                        metrics[f"{exp.name} {key}"] = value
            metrics["experiments"] = rows
            metrics["table4"] = table4_markdown(experiments, rows, tc)
            with atomic_write(out_dir / "table4.md") as handle:
                handle.write(metrics["table4"])
        metrics["wall_time_s"] = round(time.time() - started, 1)
        return metrics

    # Only the evaluating steps finish the stage; force redoes the training and evaluation but keeps the
    # extracted features (they are per tube and skipped when present; tubes.overwrite_features recomputes them).
    return run_stage(cfg, STAGE, work, finishes=step in ("evaluate", "all"), record=f"{step}.json",
                     redo=lambda out_dir: (out_dir / METRICS).unlink(missing_ok=True), plots=False)


def table4_markdown(experiments: Sequence[Any], rows: dict[str, dict[str, Any]], tc: Any) -> str:
    """Table 4's layout: AA rows with their bucket columns, then CA rows with theirs (average mAP in %)."""
    from seal_transfer.tad.config import TASK_TITLES

    lines: list[str] = []
    for task in ("aa", "ca"):
        exps = [e for e in experiments if e.task == task]
        if not exps:
            continue
        buckets = (tc.aa_buckets if task == "aa" else tc.ca_buckets).bucket_names()
        sizes = rows[exps[0].name]["bucket_sizes"]
        header = ["Dataset", "Features"] + [f"mAP({b}) [{sizes.get(b, 0)} cls]" for b in buckets] + ["mAP(all)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for exp in exps:
            r = rows[exp.name]
            values = [_pct(r.get(b)) for b in buckets] + [_pct(r.get("all"))]
            lines.append("| " + " | ".join([TASK_TITLES[task], exp.features_title] + values) + " |")
        lines.append("")
    return "\n".join(lines)


def _pct(value: Any) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{100 * float(value):.2f}"


_main = stage_main("seal_transfer.tubes", DESCRIPTION, SECTIONS, run)


def main(argv: Sequence[str]) -> Optional[int]:
    """`tubes extract ...` is `tubes tubes.step=extract ...`."""
    args = list(argv)
    if args and args[0] in ("extract", "train", "evaluate", "all"):
        args = args[1:] + [f"tubes.step={args[0]}"]
    return _main(args)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
