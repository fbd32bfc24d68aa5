"""The experiment scripts' planning, without training: the selection-rule experiment pairs with Table 5's runs on
the report world, keeps its choose world apart, and chooses settings only from complete choose-world records."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rules_script():
    sys.path.insert(0, str(ROOT / "scripts"))  # the scripts import their sibling reproduce_table5
    try:
        yield importlib.import_module("reproduce_selection_rules")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce_selection_rules.py"), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_dry_run_reuses_table5_pretrains_on_the_report_world_only() -> None:
    out = _run("--dry-run")
    # World 0 (reported): the SEAL pretrains are Table 5's, found through their committed records (same hash).
    assert "reuse  w0  pretrain_seal__s0  (results/runs/table5)" in out
    # World 1 (choose): its own pretrains with its own seeds, recorded apart.
    assert "w1  pretrain_seal__s100  (results/runs/selection_rules/w1)" in out
    assert "w0  pretrain_seal__s100" not in out and "w1  pretrain_seal__s0 " not in out
    lines = out.splitlines()
    first_w0 = next(i for i, line in enumerate(lines) if " w0 " in line)
    assert all(" w1 " not in line for line in lines[first_w0:])  # the whole choose phase comes first


def test_choose_waits_for_every_seed_and_takes_the_best_mean(rules_script) -> None:
    plan = {"choose": {"seeds": [100, 101], "fraction": 0.25},
            "rules": {"debiased": {"values": [0.5, 1.0]}, "score_weight": {"values": [None]}}}

    def ft(rule, value, seed, m):
        return {"kind": "finetune", "rule": rule, "value": value, "fraction": 0.25, "seed": seed, "mAP": m}

    records = [ft("debiased", 0.5, 100, 0.20), ft("debiased", 0.5, 101, 0.22), ft("debiased", 1.0, 100, 0.30)]
    chosen = rules_script.choose(plan, records)
    assert chosen["debiased"]["done"] is False  # value 1.0 lacks seed 101: no choice yet
    assert chosen["score_weight"]["done"] is False
    records += [ft("debiased", 1.0, 101, 0.10), ft("score_weight", None, 100, 0.2), ft("score_weight", None, 101, 0.2)]
    chosen = rules_script.choose(plan, records)
    assert chosen["debiased"] == {"done": True, "value": 0.5, "mean": pytest.approx(0.21), "n": 2}  # 0.21 > 0.20
    assert chosen["score_weight"]["done"] and chosen["score_weight"]["value"] is None
    assert rules_script.is_chosen(chosen, "score_weight", None)


def test_report_only_writes_the_report_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "selection_rules.md"
    _run("--report-only", "--out", str(out))
    text = out.read_text()
    assert "Choosing each rule's setting (world 1" in text and "| Table 5: seal |" in text
    assert "class_balanced_0.2" in text and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
