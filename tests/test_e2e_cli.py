"""The real CLIs, end to end, on the tiny synthetic world with the tiny model (configs/smoke.yaml)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run_cli(stage: str, *args: str, cache: Path, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"seal_transfer.{stage}", *args]
    if stage not in ("synth", "evaluate"):
        cmd += [f"data.cache_dir={cache}", "trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _in_unit(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.e2e
def test_pretrain_adapt_finetune_chain(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    run_cli("pretrain", "--config", SMOKE, f"run_dir={run}", cache=cache)
    pre = json.loads((run / "pretrain" / "metrics.json").read_text())
    assert _in_unit(pre["mAP"]) and _in_unit(pre["top50"])
    for name in (
        "config.yaml",
        "model.pt",
        "val_detections.csv",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "logs/metrics.csv",
    ):
        assert (run / "pretrain" / name).is_file(), name
    assert list((run / "pretrain" / "logs").glob("events.out.tfevents.*"))

    proc = run_cli("adapt", "--config", SMOKE, f"run_dir={run}", "adapt.rounds=2", "adapt.epochs_per_round=1",
                   cache=cache)
    assert "pseudo-label:" not in proc.stderr  # trainer.enable_progress_bar=false silences the labelling bar too
    for r in (1, 2):
        round_dir = run / "adapt" / f"round_{r}"
        stats = json.loads((round_dir / "stats.json").read_text())
        assert stats["samples_seen"] > 0 and 0 <= stats["kept"] <= stats["samples_seen"]
        assert _in_unit(stats["kept_fraction"]) and _in_unit(stats["pools"]["train"]["view_agreement_rate"])
        header = (round_dir / "pseudo_labels.csv").read_text().splitlines()[:1]
        assert not header or len(header[0].split(",")) == 9  # AVA layout + person id + score
        assert (round_dir / "model.pt").is_file() and (round_dir / "metrics.json").is_file()
    adapt = json.loads((run / "adapt" / "metrics.json").read_text())
    assert adapt["rounds"] == 2 and len(adapt["per_round"]) == 2
    _offline_round1_equals_the_stage(run, cache)

    proc = run_cli("finetune", "--config", SMOKE, f"run_dir={run}", cache=cache)
    assert "starting from adapt stage" in proc.stdout
    fine = json.loads((run / "finetune" / "metrics.json").read_text())
    assert _in_unit(fine["mAP"]) and fine["init_from"].startswith("adapt stage")
    rows = (run / "finetune" / "val_detections.csv").read_text().splitlines()
    assert rows and len(rows[0].split(",")) == 8
    # The folder holds what its detections were scored against, so the evaluator CLI re-scores it from its own
    # files (to the CSV's 6-decimal scores).
    fdir = run / "finetune"
    run_cli("evaluate", "ava", str(fdir / "val_groundtruth.csv"), str(fdir / "val_detections.csv"),
            "--labelmap", str(fdir / "val_labelmap.pbtxt"), "--exclusions", str(fdir / "val_excluded_timestamps.csv"),
            "--json", str(tmp_path / "rescored.json"), cache=cache)
    rescored = json.loads((tmp_path / "rescored.json").read_text())
    assert rescored["mAP"] == pytest.approx(fine["mAP"], abs=1e-3)
    assert sorted(rescored["per_class"]) == sorted(fine["per_class_AP"])

    again = run_cli("finetune", "--config", SMOKE, f"run_dir={run}", cache=cache)
    assert "already finished" in again.stdout


def _offline_round1_equals_the_stage(run: Path, cache: Path) -> None:
    """One scoring pass outside the stage (`score_target_pools`, what the offline rule analyses start from) gives
    round 1 exactly the scores the stage labelled with: the paper rule reapplied keeps the same boxes."""
    import numpy as np
    import torch

    from seal_transfer.config.loader import load_config
    from seal_transfer.config.schema import Config
    from seal_transfer.pseudo.rounds import score_target_pools
    from seal_transfer.pseudo.rules import build_rule

    args = [f"run_dir={run}", f"data.cache_dir={cache}", "trainer.enable_progress_bar=false", "adapt.rounds=2",
            "adapt.epochs_per_round=1"]
    cfg = load_config(Config, [SMOKE], args)
    stats = json.loads((run / "adapt" / "round_1" / "stats.json").read_text())
    pools = score_target_pools(cfg, run / "pretrain" / "model.pt", 1)
    assert [p.name for p in pools] == list(stats["pools"])
    for pool in pools:
        selection, _ = build_rule(cfg.adapt)(torch.from_numpy(pool.scores.view1), torch.from_numpy(pool.scores.view2),
                                             1, None)
        recorded = stats["pools"][pool.name]
        assert len(pool.scores.box_ids) == recorded["samples_seen"]
        assert int(selection.keep.sum()) == recorded["kept"]
        assert float(selection.agree.float().mean()) == pytest.approx(recorded["view_agreement_rate"], abs=1e-6)
        best = np.maximum(pool.scores.view1.max(1), pool.scores.view2.max(1)).mean()
        assert float(best) == pytest.approx(recorded["mean_max_score_all"], abs=1e-6)  # the same scores


@pytest.mark.e2e
def test_generic_pretrain_then_finetune(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "run"
    run_cli("pretrain", "--config", SMOKE, f"run_dir={run}", "task=classification", cache=cache)
    pre = json.loads((run / "pretrain" / "metrics.json").read_text())
    assert pre["task"] == "classification" and _in_unit(pre["accuracy"])
    proc = run_cli("finetune", "--config", SMOKE, f"run_dir={run}", cache=cache)
    assert "backbone" in proc.stdout  # the load report says what moved from the classifier
    assert _in_unit(json.loads((run / "finetune" / "metrics.json").read_text())["mAP"])


def test_help_and_print_config(cache: Path) -> None:
    proc = run_cli("adapt", "--help", cache=cache)
    assert "adapt.lambda_c = 0.3" in proc.stdout and "credible threshold" in proc.stdout
    proc = run_cli("finetune", "--config", SMOKE, "--print-config", "optim.lr=0.2", cache=cache)
    assert "lr: 0.2" in proc.stdout and "preset: tiny" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim.lrr=0.1"], "unknown config key 'optim.lrr' (did you mean 'optim.lr'?)"),
        (["trainer.max_epochs=ten"], "config key 'trainer.max_epochs'"),
        (["adapt.lambda_c=1.5"], "config key 'adapt.lambda_c': must be in (0, 1]"),
        (["--config", "does/not/exist.yaml"], "does/not/exist.yaml: file not found"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_config_mistakes_exit_2_with_one_line(args: list[str], message: str, cache: Path) -> None:
    proc = run_cli("adapt", *args, cache=cache, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_synth_cli_writes_readable_world(tmp_path: Path, cache: Path) -> None:
    from seal_transfer.data.formats.ava import read_ava_csv, read_labelmap
    from seal_transfer.data.formats.seal import read_seal_clips, read_seal_tubes

    out = tmp_path / "world"
    proc = run_cli("synth", "preset=tiny", f"out={out}", cache=cache)
    assert "source (SEAL)" in proc.stdout and "target (AVA)" in proc.stdout
    seal = out / "seal"
    lm = read_labelmap(seal / "seal_atomic_actions.pbtxt")
    tubes = read_seal_tubes(seal / "seal_tubes_train.json", seal / "seal_tubes_train_boxes.npz", lm)
    assert tubes.num_tubes() > 0
    clips = read_seal_clips(seal / "seal_clips_train.csv", seal / "seal_clips_train_boxes.npz")
    assert len(clips.table) > 0
    ann = out / "ava" / "annotations"
    gt = read_ava_csv(ann / "ava_train_v2.2.csv", "gt")
    assert len(gt) > 0 and gt.timestamps.min() >= 902
    assert len(read_ava_csv(ann / "ava_val_predicted_boxes.csv", "boxes")) > 0
    assert list((out / "ava" / "videos").glob("*.mp4"))


@pytest.mark.e2e
def test_finetune_validates_on_detector_boxes(tmp_path: Path, cache: Path) -> None:
    """Validation on a person detector's boxes (AVA practice), scored against the GT rows."""
    run = tmp_path / "run"
    run_cli(
        "finetune",
        "--config",
        SMOKE,
        f"run_dir={run}",
        "data.target.val_boxes=annotations/ava_val_predicted_boxes.csv",
        "data.target.val_box_threshold=0.5",
        "optim.loss=bce_softmax_pose",
        cache=cache,
    )
    fine = json.loads((run / "finetune" / "metrics.json").read_text())
    assert _in_unit(fine["mAP"])
    # The exported weights say how their scores are read (softmax over the pose classes), so a scorer built from
    # the file (demo, tube features) scores as validation did.
    from seal_transfer.engine.inference import load_scorer

    scorer = load_scorer(run / "finetune" / "model.pt")
    assert scorer.loss == "bce_softmax_pose" and len(scorer.pose_columns) == 5
    det_rows = (run / "finetune" / "val_detections.csv").read_text().splitlines()
    gt_boxes = {
        tuple(r.split(",")[:6])
        for r in (next(cache.glob("tiny-*")) / "ava" / "annotations" / "ava_val_v2.2.csv").read_text().splitlines()
    }
    det_boxes = {tuple(r.split(",")[:6]) for r in det_rows}
    assert det_boxes and det_boxes != gt_boxes  # scored boxes are the detector's, not the GT's


@pytest.mark.e2e
def test_lambda_sweep_cli(tmp_path: Path, cache: Path) -> None:
    """The sweep runs its own pretrain, then adapt + finetune per value, and writes table, JSON and plot."""
    run, out = tmp_path / "run", tmp_path / "sweep"
    proc = run_cli("sweep", "--config", SMOKE, f"run_dir={run}", "adapt.rounds=1", "adapt.epochs_per_round=1",
                   "sweep.values=[0.3,1.0]", f"sweep.out={out}", "sweep.note=SYNTHETIC smoke", cache=cache)
    assert "no finished pretrain" in proc.stdout
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["value"] for r in rows] == [0.3, 1.0]
    assert all(_in_unit(r["mAP"]) for r in rows)
    assert rows[1]["per_round"][0]["kept"] == 0  # no score exceeds 1.0
    table = out.with_suffix(".md").read_text()
    assert "python -m seal_transfer.sweep --config" in table
    assert "adapt.lambda_c = 1.0: adaptation left the pretrained weights unchanged" in table
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.e2e
def test_oracle_adapt_then_label_scarce_finetune(tmp_path: Path, cache: Path) -> None:
    """adapt.labels=oracle trains on the hidden truth (precision 1 by construction) and records the diagnostics;
    finetune with data.target.label_fraction trains on a subset of the train videos; data.preload decodes once."""
    run = tmp_path / "run"
    run_cli("pretrain", "--config", SMOKE, f"run_dir={run}", cache=cache)
    run_cli("adapt", "--config", SMOKE, f"run_dir={run}", "adapt.rounds=1", "adapt.epochs_per_round=1",
            "adapt.labels=oracle", cache=cache)
    stats = json.loads((run / "adapt" / "round_1" / "stats.json").read_text())
    assert stats["labels"] == "oracle" and stats["pseudo_label_precision"] == 1.0
    assert stats["kept"] == stats["boxes_with_truth"] > 0  # every box with truth is kept, with its true labels
    assert _in_unit(stats["argmax_precision"]) and _in_unit(stats["majority_class_frequency"])
    assert stats["kept_classes"] == stats["truth_classes"] and stats["kept_truth_class_coverage"] == 1.0

    # Selection rules beyond the paper, the EMA teacher and score-weighted loss, from the same pretrain.
    rules = tmp_path / "rules"
    run_cli("adapt", "--config", SMOKE, f"run_dir={rules}", f"init={run / 'pretrain' / 'model.pt'}",
            "adapt.rounds=2", "adapt.epochs_per_round=1", "adapt.selection=debiased", "adapt.lambda_c=0.05",
            "adapt.teacher=ema", "adapt.ema_momentum=0.5", "adapt.loss_weight=score", "adapt.negatives=confident",
            "adapt.negative_threshold=0.01", cache=cache)
    r1, r2 = (json.loads((rules / "adapt" / f"round_{r}" / "stats.json").read_text()) for r in (1, 2))
    assert r1["selection"] == "debiased" and r1["teacher"] == "ema" and r1["negatives"] == "confident"
    ignored = (rules / "adapt" / "round_1" / "ignored_labels.csv").read_text().splitlines()
    assert len(ignored) == r1["ignored_labels"] > 0  # an untrained model is unsure of most classes: left out
    assert len(r1["rule_state"]["train"]["marginal"]) == len(r2["rule_state"]["train"]["marginal"]) > 1
    assert r2["weights"].endswith("round_1/teacher.pt")  # the EMA teacher labels round 2, not the student
    round1 = json.loads((rules / "adapt" / "round_1" / "metrics.json").read_text())
    assert round1["trained"] and round1["ema_updates"] > 0
    assert (rules / "adapt" / "round_1" / "teacher.pt").is_file()

    proc = run_cli("finetune", "--config", SMOKE, f"run_dir={run}", "data.target.label_fraction=0.5",
                   "data.preload=true", "data.num_workers=0", cache=cache)
    fine = json.loads((run / "finetune" / "metrics.json").read_text())
    assert fine["label_fraction"] == 0.5 and fine["labelled_train_videos"] == 1 and fine["train_videos_total"] == 2
    assert "preloaded the frames of" in proc.stdout and fine["train_samples_per_s"] > 0


@pytest.mark.e2e
def test_oracle_adapt_on_real_roots_refuses_before_any_work(tmp_path: Path, cache: Path) -> None:
    """Real data has no hidden truth: adapt.labels=oracle|random stop with one line before the stage folder exists."""
    import shutil

    run_cli("synth", "preset=tiny", f"cache_dir={cache}", cache=cache)
    world = next(p for p in cache.iterdir() if p.name.startswith("tiny-seed0-"))
    shutil.copytree(world / "seal", tmp_path / "seal")
    shutil.copytree(world / "ava", tmp_path / "ava")  # a "real" AVA root: no hidden_truth/ beside it
    for labels in ("oracle", "random"):
        proc = run_cli("adapt", "--config", SMOKE, f"run_dir={tmp_path / 'run'}", f"adapt.labels={labels}",
                       f"data.source.root={tmp_path / 'seal'}", f"data.target.root={tmp_path / 'ava'}",
                       cache=cache, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and f"adapt.labels={labels}" in lines[0]
        assert not (tmp_path / "run" / "adapt").exists()
