"""`python -m seal_transfer.sweep`: the table it writes, and the errors it raises before any work starts."""

from __future__ import annotations

from pathlib import Path

from seal_transfer.cli import guarded_main
from seal_transfer.sweep import main, write_sweep_table

ROOT = Path(__file__).resolve().parents[1]


def _row(value: float, kept: list[int], precision: list[float | None], mAP: float) -> dict:
    per_round = [{"round": i + 1, "kept": k, "samples_seen": 10, "kept_fraction": k / 10,
                  "pseudo_label_precision": p} for i, (k, p) in enumerate(zip(kept, precision))]
    return {"value": value, "per_round": per_round, "mAP": mAP, "kept_fraction": kept[-1] / 10}


def test_table_lists_every_round_and_flags_values_that_kept_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sweep.md"
    rows = [_row(0.3, [6, 10], [0.5, 0.25], 0.131), _row(0.9, [0, 0], [None, None], 0.142)]
    write_sweep_table(rows, "adapt.lambda_c", out, "SYNTHETIC test", "python -m seal_transfer.sweep x=1")
    text = out.read_text()
    assert "| 0.3 | 6/10, 10/10 | 0.5000, 0.2500 | 0.1310 |" in text
    assert "| 0.9 | 0/10, 0/10 | —, — | 0.1420 |" in text
    assert "adapt.lambda_c = 0.9: adaptation left the pretrained weights unchanged" in text
    assert "python -m seal_transfer.sweep x=1" in text
    assert "0.3:" not in text.split("No box passed")[1]  # only the value that kept nothing is named


def test_table_without_rounds_or_command(tmp_path: Path) -> None:
    out = tmp_path / "sweep.md"
    write_sweep_table([{"value": "both", "mAP": None}], "adapt.score_views", out, "note")
    text = out.read_text()
    assert "| both | — | — | — |" in text and "```" not in text and "No box passed" not in text


def test_unknown_sweep_key_fails_before_any_work(tmp_path: Path, capsys) -> None:
    argv = ["--config", str(ROOT / "configs" / "smoke.yaml"), f"run_dir={tmp_path / 'run'}", "sweep.key=adapt.nope"]
    assert guarded_main(main, argv) == 2
    assert "'adapt.nope' is not a config key" in capsys.readouterr().err
    assert not (tmp_path / "run" / "pretrain").exists()


def test_empty_value_list_fails_before_any_work(tmp_path: Path, capsys) -> None:
    argv = ["--config", str(ROOT / "configs" / "smoke.yaml"), f"run_dir={tmp_path / 'run'}", "sweep.values=[]"]
    assert guarded_main(main, argv) == 2
    assert "sweep.values" in capsys.readouterr().err
    assert not (tmp_path / "run" / "pretrain").exists()
