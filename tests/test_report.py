"""Report figures: every plot writes a readable PNG; stage folders and run
directories become figures + report.md; the make_report script's CLI behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_pr import random_eval_data

from seal_transfer.data.formats.ava import LabelMap as AvaLabelMap
from seal_transfer.data.formats.ava import write_ava_csv, write_exclusions, write_labelmap
from seal_transfer.errors import UserError
from seal_transfer.evaluation.frame_map import frame_map
from seal_transfer.evaluation.pr import precision_recall_curves
from seal_transfer.report import (
    build_report,
    plot_lambda_sweep,
    plot_per_class_ap,
    plot_pr_curves,
    plot_pseudo_label_stats,
    plot_training_curves,
    read_sweep_rows,
    stage_plots,
)

ROOT = Path(__file__).resolve().parents[1]


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        return image.size


def test_plot_functions_write_pngs(tmp_path: Path) -> None:
    gt, dets, exclusions = random_eval_data(3)
    curves = precision_recall_curves(gt, dets, [1, 2, 7], exclusions=exclusions)
    assert curves[7].precision.size and curves[7].num_gt == 0
    out = plot_pr_curves(list(curves.values()), tmp_path / "pr.png", class_names={1: "walk", 2: "run"})
    assert _png_size(out)[0] > 300

    per_class = {"1": 0.8, "2": None, 3: float("nan"), 4: 0.1, 5: 0.45}
    out = plot_per_class_ap(per_class, tmp_path / "ap.png", class_names={1: "walk"},
                            groups={"top150": [1, 2, 3, 4, 5], "top50": [1, 4]})
    width, height = _png_size(out)
    assert height > 100 and width > 300

    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,step,train/loss,train/lr,val/mAP\n0,0,0.9,0.01,\n0,1,0.7,0.02,\n0,1,,,0.3\n"
                        "1,3,0.5,0.02,\n1,3,,,0.4\n", encoding="utf-8")
    assert _png_size(plot_training_curves(csv_path, tmp_path / "train.png"))[0] > 300
    assert _png_size(plot_training_curves([("round 1", csv_path), ("round 2", csv_path)], tmp_path / "t2.png"))

    rounds = [
        {"round": 1, "kept_fraction": 0.5, "pseudo_label_precision": 0.7,
         "pools": {"train": {"samples_seen": 10, "view_agreement_rate": 0.6, "confident_fraction": 0.8,
                             "per_class_counts": {"1": 3, "4": 2}}}},
        {"round": 2, "kept_fraction": 0.6, "pseudo_label_precision": None,
         "pools": {"train": {"samples_seen": 10, "view_agreement_rate": 0.7, "per_class_counts": {"1": 6}}}},
    ]
    assert _png_size(plot_pseudo_label_stats(rounds, tmp_path / "pseudo.png", class_names={1: "walk"}))


def test_lambda_sweep_accepts_sweep_cli_rows_and_categorical_values(tmp_path: Path) -> None:
    rows = [{"value": 0.5, "mAP": 0.2, "kept_fraction": 0.3, "pseudo_label_precision": 0.9},
            {"value": 0.1, "mAP": 0.25, "kept_fraction": 0.9, "pseudo_label_precision": 0.5},
            {"value": 0.3, "mAP": None, "kept_fraction": 0.0, "pseudo_label_precision": None}]
    assert _png_size(plot_lambda_sweep(rows, tmp_path / "sweep.png", key="adapt.lambda_c"))
    assert _png_size(plot_lambda_sweep([{"lambda_c": 0.3, "mAP": 0.1}], tmp_path / "one.png"))
    cats = [{"value": "both", "mAP": 0.2}, {"value": "first", "mAP": 0.3}]
    assert _png_size(plot_lambda_sweep(cats, tmp_path / "cat.png", key="adapt.score_views"))


def test_read_sweep_rows(tmp_path: Path) -> None:
    cli_json = tmp_path / "sweep.json"
    cli_json.write_text(json.dumps({"key": "adapt.lambda_c", "rows": [{"value": 0.3, "mAP": 0.2}]}), encoding="utf-8")
    assert read_sweep_rows(cli_json) == ("adapt.lambda_c", [{"value": 0.3, "mAP": 0.2}])
    table = tmp_path / "sweep.csv"
    table.write_text("lambda_c,mAP\n0.1,0.2\n0.3,0.25\n", encoding="utf-8")
    key, rows = read_sweep_rows(table)
    assert key == "adapt.lambda_c" and rows[1]["mAP"] == "0.25"
    bad = tmp_path / "bad.csv"
    bad.write_text("x,mAP\n1,2\n", encoding="utf-8")
    with pytest.raises(UserError, match="lambda_c"):
        read_sweep_rows(bad)
    with pytest.raises(UserError, match="not found"):
        read_sweep_rows(tmp_path / "missing.json")


def _fake_run(tmp_path: Path) -> Path:
    """A run dir as the stages leave it: finetune (detections beside the GT, exclusions and label map they were
    scored against) and adapt."""
    labelmap = AvaLabelMap([1, 2, 3], {1: "stand", 2: "walk", 3: "talk to"},
                           {1: "PERSON_MOVEMENT", 2: "PERSON_MOVEMENT", 3: "PERSON_INTERACTION"})
    gt, dets, _ = random_eval_data(4)
    gt = gt.select(gt.action_ids <= 3)
    run = tmp_path / "run"
    fine = run / "finetune"
    write_ava_csv(fine / "val_detections.csv", dets.select(dets.action_ids <= 3), "detections")
    write_ava_csv(fine / "val_groundtruth.csv", gt, "gt")
    write_exclusions(fine / "val_excluded_timestamps.csv", [])
    write_labelmap(fine / "val_labelmap.pbtxt", labelmap)
    result = frame_map(gt, dets, [1, 2, 3])
    metrics = {"stage": "finetune", "mAP": result.mAP, "epochs": 2, "init_from": "adapt stage",
               "per_class_AP": {str(k): v for k, v in result.per_class.items()}}
    (fine / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    logs = fine / "logs"
    logs.mkdir()
    (logs / "metrics.csv").write_text("epoch,step,train/loss,val/mAP\n0,0,0.8,\n0,0,,0.2\n1,1,0.6,\n1,1,,0.3\n",
                                      encoding="utf-8")
    torch.save({"state_dict": {}, "seal_transfer": {"class_ids": [1, 2, 3], "class_names": ["stand", "walk",
                                                                                            "talk to"]}},
               fine / "model.pt")
    adapt = run / "adapt"
    for r in (1, 2):
        round_dir = adapt / f"round_{r}"
        (round_dir / "logs").mkdir(parents=True)
        (round_dir / "logs" / "metrics.csv").write_text("epoch,step,train/loss\n0,0,0.5\n0,1,0.4\n", encoding="utf-8")
        (round_dir / "stats.json").write_text(json.dumps(
            {"round": r, "samples_seen": 20, "kept": 5 * r, "kept_fraction": 0.25 * r, "pseudo_label_precision": 0.6,
             "pools": {"train": {"samples_seen": 20, "view_agreement_rate": 0.5, "per_class_counts": {"1": 5 * r}}}}),
            encoding="utf-8")
    (adapt / "metrics.json").write_text(json.dumps({"stage": "adapt", "kept_fraction": 0.5}), encoding="utf-8")
    return run


def test_stage_plots_draw_every_figure_a_stage_supports(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    written = stage_plots(run / "finetune")
    assert sorted(p.name for p in written) == ["per_class_ap.png", "pr_curves.png", "training_curves.png"]
    assert all(p.parent == run / "finetune" / "plots" and _png_size(p) for p in written)
    adapt = stage_plots(run / "adapt")
    assert sorted(p.name for p in adapt) == ["pseudo_labels.png", "training_curves.png"]


def test_stage_plots_skip_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stage = tmp_path / "pretrain"
    stage.mkdir()
    (stage / "metrics.json").write_text(json.dumps({"stage": "pretrain", "per_class_AP": {"1": 0.5}}), "utf-8")
    written = stage_plots(stage)  # no logs, no validation GT, no detections: only the AP bars
    assert [p.name for p in written] == ["per_class_ap.png"]
    out = capsys.readouterr().out
    assert "training_curves: skipped" in out and "pr_curves: skipped" in out


def test_build_report_writes_markdown_with_existing_figures(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"key": "adapt.lambda_c", "rows": [{"value": 0.1, "mAP": 0.2, "kept_fraction": 0.9},
                                                                    {"value": 0.3, "mAP": 0.3, "kept_fraction": 0.5}]}))
    out = tmp_path / "report"
    report = build_report(run, out, sweep=sweep, title="Test run")
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Test run")
    assert "## finetune" in text and "## adapt" in text and "Sweep of `adapt.lambda_c`" in text
    assert "| 2 | 20 | 10 | 0.5000 | 0.5000 | 0.6000 |" in text  # adapt round 2 row
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 6 and all((out / link).is_file() for link in links)
    with pytest.raises(UserError, match="no finished stage"):
        build_report(tmp_path / "report", tmp_path / "x")


def test_make_report_script_end_to_end(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_report.py"), str(run), "--out", str(out),
                           "--pr-classes", "1,2"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").is_file() and (out / "finetune_pr_curves.png").is_file()
    assert "wrote" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_report.py"), str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
