"""Figures and a markdown report from what the stages leave in a run directory.

A stage folder (RUN/<stage>/) holds metrics.json (incl. per_class_AP), model.pt (class names), logs/metrics.csv,
val_detections.csv and the GT, exclusions and label map it was scored against; adapt adds round_<r>/stats.json.
Only those files are read -- no config, no dataset: the figures are views of them, redrawn at any time.
A figure whose inputs are missing is skipped with a note, never an error: plots must not fail a finished stage.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from seal_transfer.report.plots import (
    plot_lambda_sweep,
    plot_per_class_ap,
    plot_pr_curves,
    plot_pseudo_label_stats,
    plot_training_curves,
)
from seal_transfer.rundir import (
    METRICS,
    ROUND_STATS,
    VAL_DETECTIONS,
    VAL_EXCLUSIONS,
    VAL_GROUNDTRUTH,
    VAL_LABELMAP,
    WEIGHTS,
)
from seal_transfer.utils.fileio import atomic_write

STAGES = ("pretrain", "adapt", "finetune")


@dataclass
class StageFigures:
    """What was drawn for one stage, and the data the markdown tables need."""

    stage: str
    directory: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)  # kind -> PNG
    notes: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # adapt: round_<r>/stats.json


def class_names_from_weights(path: Path) -> dict[int, str]:
    """Class id → name from our exported model.pt's metadata ({} for other files)."""
    from seal_transfer.models.checkpoints import stored_description_of

    meta = stored_description_of(path)
    ids, names = meta.get("class_ids"), meta.get("class_names")
    if not ids or not names or len(ids) != len(names):
        return {}
    return {int(i): str(n) for i, n in zip(ids, names)}


def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _validation_truth(stage_dir: Path) -> tuple[Any, set[tuple[str, float]], dict[int, str]]:
    """(GT table, exclusions, class → label_type) the stage scored its validation detections against, from the
    files it wrote beside them (raises naming the missing file for folders written before they existed)."""
    from seal_transfer.data.formats.ava import read_ava_csv, read_exclusions, read_labelmap

    for name in (VAL_GROUNDTRUTH, VAL_EXCLUSIONS, VAL_LABELMAP):
        if not (stage_dir / name).is_file():
            raise FileNotFoundError(f"no {name} in the stage folder")
    gt = read_ava_csv(stage_dir / VAL_GROUNDTRUTH, "gt", warn=False)
    return gt, read_exclusions(stage_dir / VAL_EXCLUSIONS), dict(read_labelmap(stage_dir / VAL_LABELMAP).types)


def _pick_pr_classes(per_class: Mapping[int, Optional[float]], num_gt: Mapping[int, int],
                     wanted: Optional[Sequence[int]], limit: int) -> list[int]:
    """The requested classes, else the `limit` classes with the most validation GT boxes."""
    if wanted:
        return [int(c) for c in wanted if int(c) in per_class]
    with_gt = [c for c in per_class if num_gt.get(c, 0) > 0]
    return sorted(with_gt, key=lambda c: (-num_gt[c], c))[:limit]


def _per_class(metrics: Mapping[str, Any]) -> dict[int, Optional[float]]:
    raw = metrics.get("per_class_AP") or {}
    out: dict[int, Optional[float]] = {}
    for key, value in raw.items():
        out[int(key)] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return out


def draw_stage(stage_dir: str | Path, out_dir: str | Path, *, prefix: str = "",
               pr_classes: Optional[Sequence[int]] = None, max_pr_classes: int = 6) -> StageFigures:
    """Every figure one stage folder supports, written as `out_dir/<prefix><kind>.png`."""
    from seal_transfer.data.formats.ava import read_ava_csv
    from seal_transfer.evaluation.pr import precision_recall_curves

    stage_dir, out_dir = Path(stage_dir), Path(out_dir)
    metrics = _load_json(stage_dir / METRICS)
    stage = str(metrics.get("stage") or stage_dir.name)
    result = StageFigures(stage=stage, directory=stage_dir, metrics=metrics)
    result.class_names = class_names_from_weights(stage_dir / WEIGHTS)
    title = stage

    def attempt(kind: str, draw: Any) -> None:
        try:
            path = draw(out_dir / f"{prefix}{kind}.png")
        except Exception as exc:  # noqa: BLE001 - a missing/odd input skips one figure, with the reason
            result.notes.append(f"{kind}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
            return
        if path is not None:
            result.figures[kind] = path

    # Training curves: the stage's own log, or the adaptation rounds' logs end to end.
    round_dirs = sorted((d for d in stage_dir.glob("round_*") if d.is_dir()), key=lambda d: int(d.name[6:]))
    logs: list[tuple[str, Path]] = [(d.name.replace("_", " "), d / "logs" / "metrics.csv") for d in round_dirs
                                    if (d / "logs" / "metrics.csv").is_file()]
    if (stage_dir / "logs" / "metrics.csv").is_file():
        logs = [("", stage_dir / "logs" / "metrics.csv")]
    if logs:
        attempt("training_curves", lambda p: plot_training_curves(logs, p, title=title))
    else:
        result.notes.append("training_curves: skipped (no logs/metrics.csv)")

    # Adaptation: pseudo-label statistics per round.
    result.rounds = [_load_json(d / ROUND_STATS) for d in round_dirs if (d / ROUND_STATS).is_file()]
    if result.rounds:
        attempt("pseudo_labels", lambda p: plot_pseudo_label_stats(result.rounds, p, class_names=result.class_names))

    per_class = _per_class(metrics)
    if not per_class:
        if stage != "adapt":
            result.notes.append("per_class_ap: skipped (metrics.json has no per_class_AP)")
        return result

    groups: dict[str, list[int]] = {}
    truth: Any = None
    if isinstance(metrics.get("buckets"), dict):
        groups = {str(k): [int(c) for c in v] for k, v in metrics["buckets"].items()}
    try:
        gt, exclusions, types = _validation_truth(stage_dir)
        truth = (gt, exclusions)
        if not groups and types:
            for cid in per_class:
                if cid in types:
                    groups.setdefault(types[cid], []).append(cid)
    except Exception as exc:  # noqa: BLE001
        result.notes.append(f"pr_curves: skipped (validation GT not readable: {str(exc).splitlines()[0][:160]})")
    attempt("per_class_ap", lambda p: plot_per_class_ap(per_class, p, class_names=result.class_names, groups=groups,
                                                        title=f"{stage}: per-class AP"))

    detections_csv = stage_dir / VAL_DETECTIONS
    if truth is not None and detections_csv.is_file():
        def draw_pr(path: Path) -> Path:
            gt, exclusions = truth
            curves = precision_recall_curves(gt, read_ava_csv(detections_csv, "detections"), list(per_class),
                                             exclusions=exclusions)
            chosen = _pick_pr_classes(per_class, {c: cv.num_gt for c, cv in curves.items()}, pr_classes,
                                      max_pr_classes)
            if not chosen:
                raise ValueError("no class with validation GT")
            return plot_pr_curves([curves[c] for c in chosen], path, class_names=result.class_names,
                                  title=f"{stage}: precision-recall (IoU 0.5)")

        attempt("pr_curves", draw_pr)
    elif truth is not None:
        result.notes.append("pr_curves: skipped (no val_detections.csv)")
    return result


def stage_plots(stage_dir: str | Path, **kwargs: Any) -> list[Path]:
    """Draw a finished stage's figures into `stage_dir/plots/`; returns the PNGs written (notes are printed).

    Stages call this as their last step; it never raises for missing inputs.
    """
    stage_dir = Path(stage_dir)
    drawn = draw_stage(stage_dir, stage_dir / "plots", **kwargs)
    for note in drawn.notes:
        print(f"[{drawn.stage}] plots: {note}")
    return list(drawn.figures.values())


# ------------------------------------------------------------------------------------------------ sweep rows


def read_sweep_rows(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(swept key, rows) from the sweep CLI's JSON (`{"key", "rows"}`), a JSON list of rows, or a CSV with a header.
    Each row names its value as `value` or `lambda_c`."""
    from seal_transfer.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep results file not found")
    key = "adapt.lambda_c"
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        rows = data.get("rows") if isinstance(data, dict) else data
        if isinstance(data, dict) and isinstance(data.get("key"), str):
            key = data["key"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a JSON list of rows or {{\"key\": ..., \"rows\": [...]}}")
    else:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [dict(r) for r in csv.DictReader(handle)]
    if not rows or not any(k in rows[0] for k in ("value", "lambda_c")):
        raise UserError(f"{path}: sweep rows need a 'value' or 'lambda_c' column")
    return key, rows


# ------------------------------------------------------------------------------------------------ markdown


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def _stage_markdown(fig: StageFigures, out_dir: Path) -> list[str]:
    m = fig.metrics
    lines = [f"## {fig.stage}", "", f"Folder: `{fig.directory}`", ""]
    headline = [k for k in ("mAP", "top50", "top50-100", "top150", "accuracy", "kept_fraction",
                            "pseudo_label_precision", "epochs", "train_keyframes", "train_boxes", "val_keyframes",
                            "wall_time_s") if k in m]
    if headline:
        lines += _table(["metric", "value"], [(k, m[k]) for k in headline]) + [""]
    if fig.rounds:
        rows = []
        for s in fig.rounds:
            pools = list((s.get("pools") or {}).values())
            agree = pools[0].get("view_agreement_rate") if len(pools) == 1 else None
            rows.append((s.get("round"), s.get("samples_seen"), s.get("kept"), s.get("kept_fraction"), agree,
                         s.get("pseudo_label_precision")))
        lines += ["Pseudo labels per round:", ""]
        lines += _table(["round", "boxes seen", "kept", "kept fraction", "view agreement", "precision"], rows) + [""]
    per_class = _per_class(m)
    if per_class:
        scored = sorted(((c, v) for c, v in per_class.items() if v is not None), key=lambda kv: -kv[1])
        name = fig.class_names
        rows: list[tuple[Any, Any]] = [(f"{name.get(c, c)} ({c})", v) for c, v in scored]
        if len(rows) > 10:
            rows = rows[:5] + [("…", "…")] + rows[-5:]
            lines += ["Best and worst classes (AP@0.5):", ""]
        else:
            lines += ["Classes by AP@0.5:", ""]
        if rows:
            lines += _table(["class", "AP"], rows) + [""]
    titles = {"training_curves": "Training and validation curves", "per_class_ap": "Per-class AP",
              "pr_curves": "Precision-recall curves", "pseudo_labels": "Pseudo-label statistics per round"}
    for kind, path in fig.figures.items():
        rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
        lines += [f"**{titles.get(kind, kind)}**", "", f"![{fig.stage} {kind}]({rel.as_posix()})", ""]
    for note in fig.notes:
        lines.append(f"- note: {note}")
    return lines + [""] if fig.notes else lines


def build_report(run_dir: str | Path, out_dir: str | Path, *, pr_classes: Optional[Sequence[int]] = None,
                 sweep: Optional[str | Path] = None, title: Optional[str] = None) -> Path:
    """PNGs for every finished stage of `run_dir` (and a λ_c sweep file) + `out_dir/report.md`; returns the .md."""
    from seal_transfer.errors import UserError

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    drawn = [draw_stage(run_dir / s, out_dir, prefix=f"{s}_", pr_classes=pr_classes) for s in STAGES
             if (run_dir / s / METRICS).is_file()]
    if not drawn and sweep is None:
        raise UserError(f"{run_dir}: no finished stage (no <stage>/metrics.json in {', '.join(STAGES)})")
    lines = [f"# {title or 'Report: ' + run_dir.name}", "", f"Run directory: `{run_dir}`", ""]
    summary_rows = [(f.stage, f.metrics.get("mAP"), f.metrics.get("epochs"), f.metrics.get("init_from"))
                    for f in drawn]
    if summary_rows:
        lines += _table(["stage", "mAP", "epochs", "started from"], summary_rows) + [""]
    for fig in drawn:
        lines += _stage_markdown(fig, out_dir)
    if sweep is not None:
        key, rows = read_sweep_rows(sweep)
        png = plot_lambda_sweep(rows, out_dir / "lambda_sweep.png", key=key)
        value_col = "lambda_c" if "lambda_c" in rows[0] else "value"
        cols = [value_col] + [k for k in ("kept_fraction", "pseudo_label_precision", "mAP") if k in rows[0]]
        lines += [f"## Sweep of `{key}`", "", f"From `{sweep}`.", ""]
        lines += _table([key if c == value_col else c for c in cols], [[_number(r.get(c)) for c in cols]
                                                                        for r in rows]) + [""]
        lines += [f"![sweep]({png.relative_to(out_dir).as_posix()})", ""]
    report = out_dir / "report.md"
    with atomic_write(report) as handle:
        handle.write("\n".join(lines).rstrip() + "\n")
    return report


def _number(value: Any) -> Any:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return value
