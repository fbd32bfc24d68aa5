"""Run records and the experiment runner: a finished run is never redone while its hash matches, a changed
config reruns it and everything built on it, and the paired statistics equal hand-computed values."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from seal_transfer import experiment
from seal_transfer.experiment import (
    Job,
    Runner,
    built_on_rebuild,
    config_hash,
    load_records,
    matching_record,
    paired_difference,
    pooled_difference,
    record_path,
    run_claimed,
    t975,
    verdict,
    verdict_phrase,
)

FAKE_STAGE = '''
import json, os, sys, time
from pathlib import Path
spin = time.process_time() + 0.3  # CPU work the runner's record must count
while time.process_time() < spin:
    pass
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
out = Path(args["run_dir"]) / "{stage}"
out.mkdir(parents=True, exist_ok=True)
drift = float(os.environ.get("FAKE_DRIFT", "0"))  # a rebuild on another torch build or thread count
(out / "model.pt").write_text("weights" + str(drift))
with open(Path(args["run_dir"]).parent / "calls.txt", "a") as f:
    f.write("{stage} " + args.get("lr", "?") + "\\n")
(out / "metrics.json").write_text(json.dumps({{"mAP": float(args.get("lr", 0)) + drift, "wall_time_s": 0.1}}))
'''


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose `python -m seal_transfer.<stage>` is a fake stage that writes metrics.json."""
    pkg = tmp_path / "fakepkg" / "seal_transfer"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for stage in ("pretrain", "finetune"):
        (pkg / f"{stage}.py").write_text(FAKE_STAGE.format(stage=stage))
    (tmp_path / "c.yaml").write_text("a: 1\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fakepkg"))
    return tmp_path


def _jobs(root: Path, lr: str) -> tuple[Job, Job]:
    pre = Job("pre", "pretrain", [f"lr={lr}"], root / "runs" / "pre")
    fine = Job("fine", "finetune", ["lr=0.5"], root / "runs" / "fine", upstream=[pre],
               extract=lambda d: {"mAP_copy": json.loads((d / "metrics.json").read_text())["mAP"]})
    return pre, fine


def _calls(root: Path) -> list[str]:
    path = root / "runs" / "calls.txt"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def test_runner_skips_matching_records_and_reruns_changed_ones(project: Path) -> None:
    records = project / "results" / "runs" / "x"
    runner = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    pre, fine = _jobs(project, "0.1")
    rec = runner.ensure(fine)
    assert rec is not None and rec["mAP_copy"] == 0.5 and rec["experiment"] == "x"
    assert _calls(project) == ["pretrain 0.1", "finetune 0.5"]
    assert {r["name"] for r in load_records(records)} == {"pre", "fine"}
    assert "init=" in rec["command"] and sys.executable not in rec["command"]
    assert rec["conditions"]["cpu_seconds"] >= 0.3 and rec["conditions"]["cpu_per_wall"] > 0  # the child's CPU time

    again = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    assert again.ensure(_jobs(project, "0.1")[1]) == rec and len(_calls(project)) == 2  # nothing rerun
    assert again.reused == ["fine"]

    changed = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    changed.ensure(_jobs(project, "0.2")[1])  # upstream changed: both rerun
    assert _calls(project)[2:] == ["pretrain 0.2", "finetune 0.5"]

    (project / "c.yaml").write_text("a: 2\n")  # the config text is part of every hash
    edited = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    assert matching_record(record_path(records, "fine"), edited.job_hash(_jobs(project, "0.2")[1])) is None


def test_a_record_whose_weights_are_gone_is_rerun_only_when_needed(project: Path) -> None:
    records = project / "results" / "runs" / "x"
    runner = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    pre, fine = _jobs(project, "0.1")
    runner.ensure(pre)
    (pre.weights).unlink()  # a new session: run directories are gone, records are committed
    fresh = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    assert fresh.ensure(pre) is not None and _calls(project) == ["pretrain 0.1"]  # the record suffices
    fresh.ensure(fine)  # finetune needs the weights: pretrain is rerun in place, then finetune
    assert _calls(project)[1:] == ["pretrain 0.1", "finetune 0.5"]


def test_a_rebuild_that_does_not_reproduce_keeps_the_record_and_is_noted(project: Path, capsys,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    records = project / "results" / "runs" / "x"
    pre, fine = _jobs(project, "0.1")
    pre.extract = lambda d: {k: json.loads((d / "metrics.json").read_text())[k] for k in ("mAP", "wall_time_s")}
    Runner(project, "x", ["c.yaml"], [], records, project / "runs").ensure(fine)
    original = json.loads(record_path(records, "pre").read_text())
    first_fine = json.loads(record_path(records, "fine").read_text())
    assert original["mAP"] == 0.1 and not built_on_rebuild(first_fine, original)
    assert first_fine["upstream_weights"]["pre"] == original["weights_sha256"] is not None

    assert set(original["conditions"]) >= {"cpu_model", "cpu_avx512", "torch_version"}  # what a rebuild may differ in
    pre.weights.unlink()  # a new session on another machine: the pretrain comes out slightly different
    monkeypatch.setenv("FAKE_DRIFT", "0.01")
    real_facts = experiment.machine_facts
    monkeypatch.setattr(experiment, "machine_facts", lambda: {**real_facts(), "cpu_model": "Another CPU"})
    fresh = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    rebuilt = fresh.ensure(pre, need_weights=True)
    out = capsys.readouterr().out
    assert "does not reproduce its record (mAP 0.1 -> 0.11" in out
    assert f"the machine differs: cpu_model {original['conditions']['cpu_model']!r} -> 'Another CPU'" in out
    monkeypatch.setattr(experiment, "machine_facts", real_facts)
    assert rebuilt["mAP"] == 0.1 and rebuilt["weights_sha256"] == original["weights_sha256"]  # the record stays
    (note,) = rebuilt["rebuilds"]
    assert note["metrics_match"] is False and note["metrics"]["mAP"] == pytest.approx(0.11)
    assert note["weights_sha256"] != original["weights_sha256"]
    assert json.loads(record_path(records, "pre").read_text()) == rebuilt

    monkeypatch.delenv("FAKE_DRIFT")  # a rebuild that reproduces (its timings aside) is noted as matching
    pre.weights.unlink()
    fresh = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    assert fresh.ensure(pre, need_weights=True)["rebuilds"][-1]["metrics_match"] is True
    assert "does not reproduce" not in capsys.readouterr().out
    monkeypatch.setenv("FAKE_DRIFT", "0.01")
    fresh = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    pre.weights.unlink()
    rebuilt = fresh.ensure(pre, need_weights=True)
    (project / "runs" / "fine" / "finetune" / "model.pt").unlink()
    fine.args = ["lr=0.6"]  # a new downstream run, built on the rebuild
    fresh = Runner(project, "x", ["c.yaml"], [], records, project / "runs")
    assert built_on_rebuild(fresh.ensure(fine), rebuilt) and not built_on_rebuild(first_fine, rebuilt)


def test_a_job_owned_by_another_experiment_keeps_its_record_there(project: Path) -> None:
    """An experiment that builds on another's runs (selection rules on Table 5's pretrains) reuses their records
    and writes any it has to run into the owner's folder, under the owner's name."""
    owner = project / "results" / "runs" / "table5"
    mine = project / "results" / "runs" / "rules"
    pre, fine = _jobs(project, "0.1")
    pre.records_dir = owner
    Runner(project, "rules", ["c.yaml"], [], mine, project / "runs").ensure(fine)
    assert [r["name"] for r in load_records(owner)] == ["pre"] and load_records(owner)[0]["experiment"] == "table5"
    assert [r["name"] for r in load_records(mine)] == ["fine"]
    assert load_records(mine)[0]["commit"]  # recorded when the run started
    again = Runner(project, "table5", ["c.yaml"], [], owner, project / "runs")
    again.ensure(_jobs(project, "0.1")[0])
    assert again.reused == ["pre"] and _calls(project) == ["pretrain 0.1", "finetune 0.5"]


def test_time_budget_stops_before_starting_a_run(project: Path) -> None:
    runner = Runner(project, "x", ["c.yaml"], [], project / "rec", project / "runs", deadline=0.0)
    assert runner.ensure(_jobs(project, "0.1")[0]) is None and _calls(project) == []
    assert runner.skipped_for_time == ["pre"]


def test_paired_difference_matches_hand_computation() -> None:
    a = {0: 10.0, 1: 12.0, 2: 11.0, 3: 13.0, 4: 14.0}
    b = {0: 9.0, 1: 10.0, 2: 10.5, 3: 12.0, 4: 12.5, 5: 99.0}  # seed 5 has no partner: left out
    d = paired_difference(a, b)
    diffs = [1.0, 2.0, 0.5, 1.0, 1.5]
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 4)
    half = 2.776 * sd / math.sqrt(5)  # t_{0.975, 4}
    assert d["n"] == 5 and d["mean"] == pytest.approx(1.2)
    assert d["low"] == pytest.approx(mean - half) and d["high"] == pytest.approx(mean + half)
    assert verdict(d) == "above" and d["wins"] == 5
    assert verdict(paired_difference({0: 1.0, 1: 0.0}, {0: 0.0, 1: 1.0})) == "inconclusive"
    assert verdict(paired_difference({0: 1.0}, {0: 0.0})) == "too few seeds"
    assert verdict_phrase(d) == "the paired 95 % interval lies above zero"
    assert verdict_phrase(paired_difference({0: -2.0, 1: -3.0, 2: -2.5, 3: -2.2}, {s: 0.0 for s in range(4)})) == (
        "the paired 95 % interval lies below zero")
    assert t975(1) == 12.706 and t975(100) == 1.96


def test_pooled_difference_is_the_paired_difference_of_all_pairs() -> None:
    first = paired_difference({0: 3.0, 1: 1.0, 2: 2.0}, {0: 1.0, 1: 1.0, 2: 1.0})  # diffs 2, 0, 1
    second = paired_difference({0: 0.0, 1: 5.0}, {0: 1.0, 1: 1.0})  # diffs -1, 4: same seed numbers, other runs
    pooled = pooled_difference(first, second)
    by_hand = paired_difference(dict(enumerate([2.0, 0.0, 1.0, -1.0, 4.0])), dict.fromkeys(range(5), 0.0))
    assert pooled["n"] == 5 and pooled["seeds"] == ["0:0", "0:1", "0:2", "1:0", "1:1"]
    assert pooled["mean"] == pytest.approx(1.2) and pooled["wins"] == 3
    assert (pooled["low"], pooled["high"]) == pytest.approx((by_hand["low"], by_hand["high"]))
    assert pooled["high"] - pooled["low"] < first["high"] - first["low"]  # more pairs: a tighter interval here


def test_hash_is_order_free_in_dicts_and_sensitive_to_values() -> None:
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def _shared_queue(project: str, out: str) -> None:
    """One queue of test_queues_started_together_share_the_work (a forked process)."""
    root = Path(project)
    runner = Runner(root, "x", ["c.yaml"], [], root / "results" / "runs" / "x", root / "runs")
    pre = Job("pre", "pretrain", ["lr=0.1"], root / "runs" / "pre")
    jobs = [Job(f"fine{i}", "finetune", [f"lr={i}"], root / "runs" / f"fine{i}", upstream=[pre]) for i in range(6)]
    assert run_claimed([(runner, j) for j in jobs], root / "runs" / "claims")
    Path(out).write_text("\n".join(runner.ran))


def test_queues_started_together_share_the_work(project: Path) -> None:
    import multiprocessing

    Runner(project, "x", ["c.yaml"], [], project / "results" / "runs" / "x", project / "runs").ensure(
        Job("pre", "pretrain", ["lr=0.1"], project / "runs" / "pre"))  # shared pretrains exist first
    ctx = multiprocessing.get_context("fork")
    outs = [project / f"ran{i}.txt" for i in range(2)]
    queues = [ctx.Process(target=_shared_queue, args=(str(project), str(o))) for o in outs]
    for q in queues:
        q.start()
    for q in queues:
        q.join(120)
        assert q.exitcode == 0
    ran = [set(o.read_text().split()) for o in outs]
    assert ran[0] | ran[1] == {f"fine{i}" for i in range(6)} and not ran[0] & ran[1]  # each run once, by one queue
    assert all(ran)  # both queues took some
    assert sorted(_calls(project)[1:]) == sorted(f"finetune {i}" for i in range(6))
