"""`python -m seal_transfer.tubes` end to end on the tiny synthetic world (configs/smoke.yaml), plus its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seal_transfer.cli import guarded_main
from seal_transfer.errors import UserError
from seal_transfer.tad.config import parse_experiment
from seal_transfer.tubes import main

ROOT = Path(__file__).resolve().parents[1]
# Coarse windows and a tiny detector keep the run to seconds (configs/smoke_tubes.yaml); the paper's settings are
# the config defaults.
FAST = ["--config", str(ROOT / "configs" / "smoke_tubes.yaml"), "trainer.enable_progress_bar=false"]


@pytest.fixture()
def random_weights(tmp_path) -> Path:
    """A model.pt in the layout the pretrain stage exports (Lightning `model.` keys + metadata)."""
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    torch.manual_seed(0)
    model = build_detector(ModelConfig(preset="tiny"), num_classes=9)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "seal_transfer": {"task": "detection"}}, path)
    return path


def _args(tiny_world: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--config", str(ROOT / "configs" / "smoke.yaml"), f"run_dir={run_dir}",
            f"data.cache_dir={tiny_world.parent}", *FAST, *extra]


def test_smoke_extract_then_all(tiny_world, random_weights, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert guarded_main(main, ["extract", *_args(tiny_world, run_dir, f"init={random_weights}")]) == 0
    stage = run_dir / "tubes"
    for stream in ("slowfast", "second"):
        npys = sorted((stage / "features" / stream).glob("*.npy"))
        assert len(npys) == 10  # every train + val tube of the tiny world
        assert (stage / "features" / stream / "stream.json").is_file()
    assert (stage / "extract.json").is_file()
    assert not (stage / "metrics.json").exists()  # extract alone does not finish the stage

    assert guarded_main(main, _args(tiny_world, run_dir, f"init={random_weights}")) == 0
    out = capsys.readouterr().out
    assert "0 tubes written, 10 already there" in out  # features are reused, not recomputed
    metrics = json.loads((stage / "metrics.json").read_text())
    for key in ("aa/slowfast all", "aa/slowfast top60", "ca/second+slowfast top50", "ca/second+slowfast top200"):
        assert 0.0 <= metrics[key] <= 1.0
    aa = metrics["experiments"]["aa/slowfast"]
    assert aa["num_gt"] > 0 and aa["num_predictions"] > 0
    assert set(aa["mAP_at"]) == {f"{t:.2f}" for t in [0.5 + 0.05 * i for i in range(10)]}
    assert (stage / "aa" / "slowfast" / "model.pt").is_file()
    predictions = json.loads((stage / "ca" / "second+slowfast" / "predictions_val.json").read_text())
    assert all("/" in key for key in predictions["results"])  # keyed by video/tube
    table = (stage / "table4.md").read_text()
    assert "| AA Tubes | Slowfast-T |" in table and "TSP-T (stand-in)+Slowfast-T" in table

    assert guarded_main(main, _args(tiny_world, run_dir, f"init={random_weights}")) == 0
    assert "already finished" in capsys.readouterr().out


def test_slowfast_stream_needs_pretrained_weights(tiny_world, tmp_path, capsys):
    code = guarded_main(main, ["extract", *_args(tiny_world, tmp_path / "empty_run")])
    assert code == 2
    assert "pretrain" in capsys.readouterr().err


def test_bad_experiment_is_a_user_error(tiny_world, tmp_path, capsys):
    assert guarded_main(main, _args(tiny_world, tmp_path / "r", "tubes.experiments=[aa:tsp]")) == 2
    assert "tubes.experiments" in capsys.readouterr().err


def test_parse_experiment():
    exp = parse_experiment("ca:second+slowfast")
    assert exp.task == "ca" and exp.streams == ("second", "slowfast") and exp.name == "ca/second+slowfast"
    for bad in ("aa", "xx:slowfast", "aa:", "aa:slowfast+slowfast"):
        with pytest.raises(UserError):
            parse_experiment(bad)


def test_help_lists_the_tubes_keys(capsys):
    assert guarded_main(main, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "tubes.second_stream_init" in out and "tubes.slowfast.stride" in out
