"""The benchmark scripts run on CPU at tiny size and produce their reports (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_bench_data_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "bench_data.md"
    _script("bench_data.py", "--tiny", "--work-dir", str(tmp_path / "videos"), "--out", str(out))
    text = out.read_text()
    for row in ("decode-only limit", "ours, keyframe order", "two views", "shuffled", "pytorchvideo"):
        assert row in text
    assert text.count("\n| ") >= 7  # header + 6 measured paths


def test_bench_train_reports_both_loops(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    _script(
        "bench_train.py", "--device", "cpu", "--tiny", "--steps", "1", "--warmup", "1", "--compile", "off",
        "--no-channels-last", "--out", str(out),
    )
    report = json.loads(out.read_text())
    loops = {row["loop"] for row in report["rows"]}
    assert loops == {"bare", "lightning"}
    assert all(row["step_tflop"] > 0 and row["clips_per_s"] > 0 for row in report["rows"])
    assert "overhead_vs_bare" in next(r for r in report["rows"] if r["loop"] == "lightning")


def test_bench_pseudo_reports_both_designs_with_equal_scores(tmp_path: Path) -> None:
    out = tmp_path / "pseudo.json"
    _script("bench_pseudo.py", "--device", "cpu", "--tiny", "--repeats", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["batched"]["boxes_per_s"] > 0 and report["per_box"]["boxes_per_s"] > 0
    assert report["speedup"] > 0
    assert report["max_score_difference"] < 1e-3  # both designs score the same boxes alike


def test_bench_testbed_compares_the_cli_with_a_bare_loop(tmp_path: Path) -> None:
    out = tmp_path / "bench_testbed.md"
    _script("bench_testbed.py", "--config", "configs/smoke.yaml", "--out", str(out),
            "--set", f"data.cache_dir={tmp_path / 'cache'}", "data.preload=true", "data.num_workers=0")
    text = out.read_text()
    assert "testbed config (frames preloaded" in text and "on-the-fly decoding" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "samples/s" not in line]
    assert len(rows) == 2 and all("%" in row for row in rows)
