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


def test_report_world_runs_chosen_settings_first(rules_script, tmp_path: Path) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    table5 = yaml.safe_load((ROOT / "configs/experiments/table5.yaml").read_text())
    plan["report"].pop("blocks")  # without blocks every other value runs on the report world itself
    report = rules_script.RulePlan(plan, table5, 0, tmp_path / "w0", tmp_path / "t5", tmp_path / "t5rec")
    chosen = {rule: {"done": rule != "adaptive", "value": spec["values"][-1]} for rule, spec in plan["rules"].items()}
    names = [job.name for _, job in rules_script.report_jobs(plan, report, chosen)]
    n_done, seeds = len(plan["rules"]) - 1, plan["report"]["seeds"]
    first = names[:n_done * len(seeds)]  # every chosen setting at 0.25, all seeds, before anything else
    last_values = [rule if spec["knob"] is None else f"{rule}_{spec['values'][-1]:g}"
                   for rule, spec in plan["rules"].items() if rule != "adaptive"]
    assert "debiased_2" in last_values and "score_weight" in last_values
    assert first[:n_done] == [f"finetune_{s}__f0.25__s{seeds[0]}" for s in last_values]
    assert all("__f0.25__" in n and "adaptive" not in n for n in first)
    second = names[len(first):2 * len(first)]  # then the chosen settings at fraction 1.0
    assert all("__f1__" in n for n in second) and "finetune_debiased_2__f1__s4" in second
    rest = names[2 * len(first):]  # then every other value; the undecided rule has all its values there, none at 1.0
    assert "finetune_debiased_0.5__f0.25__s0" in rest and "finetune_adaptive_0.7__f0.25__s0" in rest
    assert "finetune_debiased_2__f0.25__s0" not in rest and not any("adaptive" in n and "__f1__" in n for n in names)
    n_values = sum(len(s["values"]) for s in plan["rules"].values())
    assert len(names) == len(set(names)) == (n_values + n_done) * len(seeds)


def test_with_blocks_the_other_values_run_in_a_block_beside_its_own_baselines(rules_script, tmp_path: Path) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    table5 = yaml.safe_load((ROOT / "configs/experiments/table5.yaml").read_text())
    assert "rebuild1" in plan["report"]["blocks"]
    chosen = {rule: {"done": True, "value": spec["values"][-1]} for rule, spec in plan["rules"].items()}
    report = rules_script.RulePlan(plan, table5, 0, tmp_path / "w0", tmp_path / "t5", tmp_path / "t5rec")
    names = [job.name for _, job in rules_script.report_jobs(plan, report, chosen)]
    assert names and all(n.split("__")[0].removeprefix("finetune_") in
                         {f"{r}_{c['value']:g}" if c["value"] is not None else r for r, c in chosen.items()}
                         for n in names)  # the report world keeps only the chosen settings
    block = rules_script.RulePlan(plan, table5, 0, tmp_path / "b", tmp_path / "b", tmp_path / "brec")
    jobs = [job for _, job in rules_script.block_jobs(plan, "rebuild1", block, chosen)]
    seed0 = [j.name for j in jobs if j.name.endswith("__s0")]
    assert seed0[:2] == ["finetune_seal__f0.25__s0", "finetune_seal_adapt_v2__f0.25__s0"]  # baselines first
    first_chosen = seed0.index("finetune_class_balanced_0.4__f0.25__s0")
    assert "finetune_class_balanced_0.1__f0.25__s0" in seed0[2:first_chosen]  # other values before chosen ones
    n_values = sum(len(s["values"]) for s in plan["rules"].values())
    n_controls = len(plan["report"]["blocks"]["rebuild1"]["controls"])
    # then the controls at 0.25, seed by seed; then 1.0: baselines + chosen values
    assert len(jobs) == 5 * (2 + n_values) + 5 * n_controls + 5 * (2 + len(plan["rules"]))
    first_f1 = 5 * (2 + n_values) + 5 * n_controls
    assert [j.name for j in jobs[5 * (2 + n_values):first_f1]][:2] == [
        "finetune_debiased_2_random_labels__f0.25__s0", "finetune_debiased_2_random_labels__f0.25__s1"]
    assert all("__f1__" in j.name for j in jobs[first_f1:])
    assert [j.name for j in jobs[first_f1:]][:3] == [
        "finetune_seal__f1__s0", "finetune_seal_adapt_v2__f1__s0", "finetune_class_balanced_0.4__f1__s0"]
    stack = list(jobs)
    while stack:  # every job of the block, pretrains included, keeps its record and run directory in the block
        job = stack.pop()  # (rule runs: records_dir None = the block runner's folder)
        assert job.records_dir in (None, tmp_path / "brec") and tmp_path / "b" in job.run_dir.parents
        assert job.records_dir is not None or job.name.split("_")[1] not in ("seal", "rule")
        stack += job.upstream


def test_report_only_writes_the_report_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "selection_rules.md"
    _run("--report-only", "--out", str(out))
    text = out.read_text()
    assert "Choosing each rule's setting (world 1" in text and "| Table 5: seal |" in text
    assert "class_balanced_0.2" in text and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def table5_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        yield importlib.import_module("reproduce_table5")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def _versioned_plan() -> dict:
    return {"version": 2, "reference": "seal", "seeds": [0, 1], "fractions": [0.25], "rows": ["seal", "seal_adapt"],
            "stage_args": {"adapt": ["adapt.rounds=2", "adapt.epochs_per_round=4"],
                           "finetune": ["trainer.max_epochs=8"]},
            "earlier_versions": {1: {"stage_args": {"adapt": ["adapt.rounds=2", "adapt.epochs_per_round=1"]}}}}


def test_a_plan_revision_renames_only_the_adapt_rows(table5_script, tmp_path: Path) -> None:
    plan = _versioned_plan()
    new, old = table5_script.Plan(plan, tmp_path), table5_script.Plan(plan, tmp_path, version=1)
    assert new.version == 2 and old.version == 1
    a2, a1 = new.adapt("rule", 0.3, 0), old.adapt("rule", 0.3, 0)
    assert (a2.name, a1.name) == ("adapt_rule_l0.3_v2__s0", "adapt_rule_l0.3__s0")  # version 1 keeps its old names
    assert "adapt.epochs_per_round=4" in a2.args and "adapt.epochs_per_round=1" in a1.args
    assert a2.run_dir != a1.run_dir and a2.fields["plan_version"] == 2
    f2, f1 = new.finetune("seal_adapt", 0.25, 0), old.finetune("seal_adapt", 0.25, 0)
    assert (f2.name, f1.name) == ("finetune_seal_adapt_v2__f0.25__s0", "finetune_seal_adapt__f0.25__s0")
    assert f2.upstream[0] is a2 and f1.upstream[0] is a1
    # The SEAL row is shared by both versions: same name, run dir and arguments.
    s2, s1 = new.finetune("seal", 0.25, 0), old.finetune("seal", 0.25, 0)
    assert (s2.name, s2.run_dir, s2.args) == (s1.name, s1.run_dir, s1.args) and "plan_version" not in s2.fields
    with pytest.raises(SystemExit, match="no version 3"):
        table5_script.Plan(plan, tmp_path, version=3)


def test_each_plan_version_is_tabled_from_its_own_records(table5_script) -> None:
    plan = _versioned_plan()

    def ft(row, seed, m, **kw):
        return {"kind": "finetune", "row": row, "fraction": 0.25, "seed": seed, "mAP": m,
                "lambda_c": 0.3 if row == "seal_adapt" else None, **kw}

    records = table5_script.with_plan_versions([
        ft("seal", 0, 0.20), ft("seal", 1, 0.22),
        ft("seal_adapt", 0, 0.10), ft("seal_adapt", 1, 0.12),  # made before versioning: version 1
        ft("seal_adapt", 0, 0.30, plan_version=2), ft("seal_adapt", 1, 0.33, plan_version=2),
    ])
    assert [r.get("plan_version") for r in records] == [None, None, 1, 1, 2, 2]
    v2 = "\n".join(table5_script.fraction_table(plan, records, 0.25, 2, ["seal", "seal_adapt"]))
    v1 = "\n".join(table5_script.fraction_table(plan, records, 0.25, 1, ["seal", "seal_adapt"]))
    assert "0: 30.00, 1: 33.00" in v2 and "0: 10.00" not in v2
    assert "0: 10.00, 1: 12.00" in v1 and "30.00" not in v1
    assert "| SEAL-style pretrain | 21.00 ± 1.41 | 2 |" in v1 and "| SEAL-style pretrain | 21.00 ± 1.41 | 2 |" in v2


def test_table5_dry_run_and_report_from_the_committed_records(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce_table5.py"), *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    planned = run("--dry-run").splitlines()
    assert "reuse  pretrain_seal__s0  (results/runs/table5)" in planned  # committed, matching record
    assert any(line.endswith("adapt_rule_l0.3_v2__s0  (results/runs/table5)") for line in planned)
    out = tmp_path / "table5.md"
    run("--report-only", "--out", str(out))
    text = out.read_text()
    assert "## Plan version 1 (superseded)" in text and "**Plan version 2.**" in text
    assert (tmp_path / "label_fraction.md").exists()
    assert (tmp_path / "label_fraction.png").read_bytes()[:4] == b"\x89PNG"


def test_pseudo_label_analysis_groups_a_boxes_rows(tmp_path: Path) -> None:
    from seal_transfer.data.formats.ava import AvaTable, write_ava_csv

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        analysis = importlib.import_module("analyse_pseudo_labels")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    a, b, c = [0.1, 0.1, 0.4, 0.9], [0.5, 0.1, 0.9, 0.9], [0.2, 0.2, 0.3, 0.3]
    pseudo = AvaTable.from_columns(["v"] * 4, [902] * 4, [a, b, b, c], [1, 2, 3, 1], person_ids=[0, 1, 1, 2],
                                   scores=[0.9, 0.8, 0.7, 0.6])
    write_ava_csv(tmp_path / "pseudo_labels.csv", pseudo, "pseudo")
    truth = AvaTable.from_columns(["v"] * 3, [902] * 3, [a, a, b], [1, 2, 2], person_ids=[0, 0, 1])
    out = analysis.round_breakdown(tmp_path / "pseudo_labels.csv", truth)
    # box a: walks (labelled) and waves (unnamed); box b: two rows, one true sole action, one wrong; box c: no truth
    assert out == {"true_only_action": 1, "true_other_action_unlabelled": 1, "true_all_labelled": 0,
                   "no_action_box": 1, "wrong_class": 1}


def test_shards_split_the_report_world_by_adapt_run(rules_script, tmp_path: Path) -> None:
    import yaml

    from seal_transfer.experiment import deal_shard, parse_shard, shard_key

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    table5 = yaml.safe_load((ROOT / "configs/experiments/table5.yaml").read_text())
    report = rules_script.RulePlan(plan, table5, 0, tmp_path / "w0", tmp_path / "t5", tmp_path / "t5rec")
    chosen = {rule: {"done": True, "value": spec["values"][0]} for rule, spec in plan["rules"].items()}
    jobs = [job for _, job in rules_script.report_jobs(plan, report, chosen)]
    shards = [deal_shard(jobs, (i, 2)) for i in range(2)]
    assert sorted(j.name for s in shards for j in s) == sorted(j.name for j in jobs)  # a partition
    assert all(shards) and not {j.name for j in shards[0]} & {j.name for j in shards[1]}
    keys = [len({shard_key(j) for j in s}) for s in shards]
    assert abs(keys[0] - keys[1]) <= 1  # dealt by position: the adapts split evenly
    head = [len({shard_key(j) for j in s if j in jobs[:20]}) for s in shards]
    assert abs(head[0] - head[1]) <= 1  # and evenly along the plan's order, not only in total
    assert deal_shard(jobs, None) == jobs
    owners = {}
    for i, shard in enumerate(shards):  # every finetune of one adapt (0.25 and 1.0) lands in the same shard
        for job in shard:
            assert owners.setdefault(shard_key(job), i) == i
    assert shard_key(jobs[0]) == jobs[0].upstream[0].name and jobs[0].upstream[0].stage == "adapt"
    assert parse_shard(None) is None and parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1-2"):
        with pytest.raises(SystemExit, match="--shard"):
            parse_shard(bad)


def test_upstream_only_deals_the_pretrains_out_over_shards(rules_script, tmp_path: Path) -> None:
    seeds = [0, 1, 2, 3, 4]
    parts = [rules_script.upstream_seeds(seeds, (i, 2)) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == seeds and [len(p) for p in parts] == [3, 2]
    assert rules_script.upstream_seeds(seeds, None) == seeds
    # Records match but the weights are not in this run root, so each pretrain would be rebuilt: with no time
    # left the command stops before any run and writes nothing.
    out = _run("--upstream-only", "--shard", "1/2", "--budget-min", "1e-9", "--run-root", str(tmp_path / "runs"),
               "--table5-runs", str(tmp_path / "t5"))
    assert "time budget reached before the pretrains were built" in out and not (tmp_path / "t5").exists()


def test_a_shard_waits_for_a_missing_pretrain(tmp_path: Path) -> None:
    from seal_transfer.experiment import Job, Runner, shared_upstream_ready, write_record

    runner = Runner(ROOT, "x", [], [], tmp_path / "records", tmp_path / "runs")
    pretrain = Job("pretrain_seal__s0", "pretrain", [], tmp_path / "runs" / "p")
    adapt = Job("adapt__s0", "adapt", [], tmp_path / "runs" / "a", upstream=[pretrain])
    finetune = Job("finetune__s0", "finetune", [], tmp_path / "runs" / "f", upstream=[adapt])
    assert not shared_upstream_ready(runner, finetune)  # no record, no weights
    write_record(tmp_path / "records" / "pretrain_seal__s0.json", experiment="x", name=pretrain.name,
                 config_hash=runner.job_hash(pretrain), commit="c", wall_time_s=1.0, fields={})
    assert not shared_upstream_ready(runner, finetune)  # a record, but its weights are gone
    pretrain.weights.parent.mkdir(parents=True)
    pretrain.weights.write_bytes(b"w")
    assert shared_upstream_ready(runner, finetune) and shared_upstream_ready(runner, adapt)


def test_rows_built_on_a_rebuilt_pretrain_are_named(rules_script) -> None:
    pretrain = {"name": "pretrain_seal__s0", "kind": "pretrain_seal", "seed": 0,
                "rebuilds": [{"weights_sha256": "new", "metrics_match": False, "metrics": {"mAP": 0.5}}]}
    adapts = [{"name": f"adapt_debiased_2__s{s}", "kind": "adapt", "rule": "debiased", "value": 2.0, "seed": s,
               "upstream_weights": {"pretrain_seal__s0": "new" if s == 0 else "old"}} for s in (0, 1)]
    finetunes = [{"name": f"finetune_debiased_2__f0.25__s{s}", "kind": "finetune", "rule": "debiased", "value": 2.0,
                  "fraction": 0.25, "seed": s, "upstream_weights": {}} for s in (0, 1)]
    assert rules_script.rebuilt_seeds(adapts + finetunes, [pretrain], "debiased", 2.0, 0.25) == [0]
    assert rules_script.rebuilt_seeds(adapts + finetunes, [pretrain], "debiased", 2.0, 1.0) == []
    # an adapt rebuilt for a fraction-1.0 finetune marks that finetune, not the earlier one
    adapts[1]["rebuilds"] = [{"weights_sha256": "a2", "metrics_match": False}]
    finetunes.append({**finetunes[1], "name": "finetune_debiased_2__f1__s1", "fraction": 1.0,
                      "upstream_weights": {"adapt_debiased_2__s1": "a2"}})
    assert rules_script.rebuilt_seeds(adapts + finetunes, [pretrain], "debiased", 2.0, 1.0) == [1]
    assert rules_script.rebuilt_seeds(adapts + finetunes, [pretrain], "debiased", 2.0, 0.25) == [0]
    pretrain["rebuilds"][0]["metrics_match"] = True  # a rebuild that reproduced: its runs pair exactly
    assert rules_script.rebuilt_seeds(adapts + finetunes, [pretrain], "debiased", 2.0, 0.25) == []


def test_a_block_pairs_each_setting_with_its_own_baselines(rules_script) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    chosen = {rule: {"done": True, "value": spec["values"][-1]} for rule, spec in plan["rules"].items()}
    seal = {0: 0.20, 1: 0.22}
    paper = {0: 0.21, 1: 0.22}
    rule = {0: 0.23, 1: 0.25}
    records = [{"kind": "pretrain_seal", "seed": s, "mAP": 0.5} for s in (0, 1)]
    records += [{"kind": "finetune", "row": "seal", "lambda_c": None, "fraction": 0.25, "seed": s, "mAP": m}
                for s, m in seal.items()]
    records += [{"kind": "finetune", "row": "seal_adapt", "lambda_c": 0.3, "plan_version": 2, "fraction": 0.25,
                 "seed": s, "mAP": m} for s, m in paper.items()]
    records += [{"kind": "finetune", "rule": "debiased", "value": 2.0, "fraction": 0.25, "seed": s, "mAP": m}
                for s, m in rule.items()]
    text = "\n".join(rules_script.block_section(plan, "rebuild1", records, chosen, 2))
    assert "| baseline: seal | 21.00 ± 1.41 | 2 |" in text
    assert "| baseline: seal_adapt | 21.50 ± 0.71 | 2 | — | +0.50" in text  # the paper rule vs no adaptation
    row = next(line for line in text.splitlines() if line.startswith("| debiased_2 (chosen)"))
    # paired differences: vs paper rule 2 and 3 points (mean 2.5), vs no adaptation 3 and 3 (mean 3.0)
    assert "| 24.00 ± 1.41 | 2 | +2.50" in row and "| +3.00" in row
    assert "| class_balanced_0.1 | (not run yet) | 0 |" in text and "s0 50.00; s1 50.00" in text
    assert "†" not in text
    # seed 1's rule run used a pretrain rebuilt in a later session that did not reproduce: named, and the block
    # hands the paper rule's own gain over no adaptation to the replication table
    records[1] = {**records[1], "name": "pretrain_seal__s1",
                  "rebuilds": [{"weights_sha256": "new", "metrics_match": False}]}
    records += [{"name": "adapt_debiased_2__s1", "kind": "adapt", "rule": "debiased", "value": 2.0, "seed": 1,
                 "upstream_weights": {"pretrain_seal__s1": "new"}}]
    gain: dict = {}
    text = "\n".join(rules_script.block_section(plan, "rebuild1", records, chosen, 2, paper_gain=gain))
    assert "| debiased_2 (chosen) †s1 | 24.00 ± 1.41 |" in text and "† These seeds' runs" in text
    assert gain[0.25]["mean"] == pytest.approx(0.5) and gain[0.25]["n"] == 2


def test_a_control_runs_its_setting_with_random_labels_and_pairs_with_it(rules_script, tmp_path: Path) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    table5 = yaml.safe_load((ROOT / "configs/experiments/table5.yaml").read_text())
    block = rules_script.RulePlan(plan, table5, 0, tmp_path / "b", tmp_path / "b", tmp_path / "brec")
    control = block.adapt("debiased_2_random_labels", None, 3)
    rule = block.adapt("debiased", 2.0, 3)
    # the same adapt as the setting it isolates, labels drawn at random, on the same pretrain
    assert set(control.args) - set(rule.args) == {"adapt.labels=random"}
    assert control.upstream[0] is rule.upstream[0] and control.fields["rule"] == "debiased_2_random_labels"
    chosen = {r: {"done": True, "value": spec["values"][-1]} for r, spec in plan["rules"].items()}
    assert not rules_script.is_chosen(chosen, "debiased_2_random_labels", None)  # never a candidate

    def ft(rule, value, seed, m):
        return {"kind": "finetune", "rule": rule, "value": value, "fraction": 0.25, "seed": seed, "mAP": m}

    records = [ft("debiased", 2.0, s, m) for s, m in ((0, 0.24), (1, 0.25), (2, 0.23))]
    records += [ft("debiased_2_random_labels", None, s, m) for s, m in ((0, 0.20), (1, 0.22), (2, 0.19))]
    text = "\n".join(rules_script.block_section(plan, "rebuild1", records, chosen, 2))
    row = next(line for line in text.splitlines() if line.startswith("| debiased_2_random_labels |"))
    # paired with debiased_2: -4, -3, -4 points -> mean -3.67, an interval below zero
    assert "| 20.33 ± 1.53 | 3 | debiased_2: -3.67 [" in row and "(0/3 seeds > 0)" in row
    assert "labels carry information beyond their spread" in text
    records = [r for r in records if r["rule"] != "debiased_2_random_labels"]
    text = "\n".join(rules_script.block_section(plan, "rebuild1", records, chosen, 2))
    assert "| debiased_2_random_labels | (not run yet) | 0 |" in text


def test_a_block_control_the_plan_does_not_define_is_refused(rules_script) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "configs/experiments/selection_rules.yaml").read_text())
    rules_script.check_controls(plan, "plan.yaml")  # the committed plan is consistent
    plan["report"]["blocks"]["rebuild1"]["controls"].append("shuffled")
    with pytest.raises(SystemExit, match="report.blocks.rebuild1.controls names 'shuffled'"):
        rules_script.check_controls(plan, "plan.yaml")
    plan["report"]["blocks"]["rebuild1"]["controls"].pop()
    plan["controls"]["debiased_2_random_labels"]["isolates"]["value"] = 3.0  # not a value the plan tries
    with pytest.raises(SystemExit, match="controls.debiased_2_random_labels"):
        rules_script.check_controls(plan, "plan.yaml")


def test_replication_puts_both_sets_of_pretrains_side_by_side(rules_script) -> None:
    from seal_transfer.experiment import paired_difference

    seeds = range(5)
    above = paired_difference({s: 2.0 + 0.1 * s for s in seeds}, {s: 0.0 for s in seeds})
    spread = paired_difference({s: (-1) ** s * 3.0 for s in seeds}, {s: 0.0 for s in seeds})
    original = {"score_weight": {0.25: {"paper": above, "none": above}}}
    blocks = {"rebuild1": {"score_weight": {0.25: {"paper": spread, "none": above}}}}
    chosen = {"score_weight": {"done": True, "value": None}}
    lines = rules_script.replication_section(original, blocks, chosen)
    vs_paper = next(line for line in lines if line.startswith("| score_weight | 0.25 | paper rule |"))
    vs_none = next(line for line in lines if line.startswith("| score_weight | 0.25 | no adaptation |"))
    assert vs_paper.endswith("| **no** | +1.40 [-0.28, +3.08] (8/10 seeds > 0) |")  # 10 pairs pooled, t(9)
    assert "| **no** |" in vs_paper and "| yes |" in vs_none  # above zero once, inconclusive once
    assert rules_script.replication_section(original, {"rebuild1": {}}, chosen) == []  # nothing to set beside yet
    gains = {"original": {0.25: above}, "rebuild1": {0.25: spread}}  # the paper rule minus no adaptation
    lines = rules_script.replication_section(original, blocks, chosen, gains)
    assert lines.index(next(line for line in lines if line.startswith("| paper rule | 0.25 | no adaptation |"))) < (
        lines.index(vs_paper))  # the paper's own claim comes first
    blocks["rebuild1"]["score_weight"][0.25]["paper"] = {**spread, "rebuilt": [4]}  # the block's s4 is on a rebuild
    lines = rules_script.replication_section(original, blocks, chosen)
    vs_paper = next(line for line in lines if line.startswith("| score_weight | 0.25 | paper rule |"))
    assert vs_paper.count("†s4") == 1 and "(3/5 seeds > 0) †s4 | **no** |" in vs_paper  # in the block's cell


def test_labeller_ceilings_on_hand_made_scores() -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        ceiling = importlib.import_module("analyse_labeller_ceiling")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    ids = np.array([10, 20, 30])
    s = np.array([[0.9, 0.1, 0.0],   # argmax 10, true 10
                  [0.6, 0.5, 0.1],   # argmax 10, true 20
                  [0.2, 0.1, 0.7],   # argmax 30, true 10
                  [0.1, 0.8, 0.2]],  # argmax 20, no action
                 np.float32)
    out = ceiling.ceilings(s, s, [{10}, {20}, {10}, set()], ids)
    assert out["truth_classes"] == 2 and out["majority_class_frequency"] == pytest.approx(2 / 3)
    assert out["argmax_all"] == {"labels": 4, "precision": 0.25, "coverage": 1.0, "correct_coverage": 0.5}
    assert out["argmax_true_only"] == {"labels": 1, "precision": 1.0, "coverage": 0.5, "correct_coverage": 0.5}
    # per class, its best box by its own score: 10 -> box 0 (true), 20 -> box 3 (no action), 30 -> box 2 (wrong)
    assert out["class_top1"]["precision"] == pytest.approx(1 / 3) and out["class_top1"]["correct_coverage"] == 0.5
    # two per class: box 1 now labelled 20 as well, so both true classes are named correctly once
    assert out["class_top2"]["labels"] == 6 and out["class_top2"]["correct_coverage"] == 1.0
    assert out["argmax_top2"]["labels"] == 4  # class 10 has two argmax boxes, 20 and 30 one each
    ceil = [out]
    reading = ceiling.goal_reading({}, ceil, [2 * out["majority_class_frequency"]])
    # at precision >= 4/3 nothing qualifies; at 0.5 the truth-kept argmax qualifies but names only half
    assert reading.startswith("No selection measured here reaches")
    reading = ceiling.goal_reading({}, ceil, [0.5])
    assert "names correctly is 0.50" in reading and "out of a selection rule's reach" in reading


def test_labeller_ceiling_report_from_the_committed_records(tmp_path: Path) -> None:
    out = tmp_path / "labeller_ceiling.md"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "analyse_labeller_ceiling.py"), "--report-only",
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "offline and recorded agree" in text  # the committed records: every recorded round 1 reproduced offline
    assert out.with_suffix(".png").stat().st_size > 0


def test_labeller_pilot_jobs_and_its_fixed_reading(tmp_path: Path) -> None:
    import yaml

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        pilot = importlib.import_module("pilot_labeller_strength")
        table5_script = importlib.import_module("reproduce_table5")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    plan = yaml.safe_load((ROOT / "configs/experiments/pilot_labeller_strength.yaml").read_text())
    assert plan["world_seed"] == 1 and list(plan["rows"]) == ["epochs4", "epochs8"]  # never the report world
    table5 = table5_script.Plan(yaml.safe_load((ROOT / "configs/experiments/table5.yaml").read_text()), tmp_path)
    pre = pilot.pretrain_job(plan, tmp_path, "epochs8", 100)
    assert pre.args == ["seed=100", "trainer.max_epochs=8"] and pre.fields["row"] == "epochs8"
    adapt = pilot.paper_adapt_job(table5, pre, "epochs8", 100)
    # scored with the paper rule's own adapt config, on this pretrain's weights
    assert adapt.args == table5.adapt("rule", 0.3, 100).args and adapt.upstream == [pre]
    adapted = pilot.transfer_job(plan, table5, pre, adapt, "epochs8", "seal_adapt", 100)
    plain = pilot.transfer_job(plan, table5, pre, adapt, "epochs8", "seal", 100)
    assert adapted.args == table5.finetune("seal_adapt", 0.25, 100).args and adapted.upstream == [adapt]
    assert plain.upstream == [pre] and plain.run_dir != adapted.run_dir
    ft = [{"kind": "finetune", "row": "epochs8", "target_row": t, "fraction": 0.25, "seed": 100, "mAP": m}
          for t, m in (("seal", 0.20), ("seal_adapt", 0.215))]
    section = "\n".join(pilot.transfer_section(plan, ft))
    assert "| s100 | epochs8 | 20.00 | 21.50 | +1.50 |" in section and "| s101 | epochs4 | — | — | — |" in section

    def scores(row: str, seed: int, coverage: float) -> dict:
        cell = {"precision": 0.5, "correct_coverage": coverage}
        return {"name": f"scores_{row}__s{seed}", "kind": "scores", "row": row, "seed": seed, "commit": "c",
                "wall_time_s": 1.0,
                "paper_round1": {"kept_fraction": 0.5, "pseudo_label_precision": 0.6,
                                 "kept_truth_class_coverage": 0.3},
                "ceilings": {"truth_classes": 20, "argmax_all": cell, "argmax_true_only": cell, "class_top1": cell}}

    def verdict(coverages: dict) -> str:
        records = [scores(row, seed, c) for (row, seed), c in coverages.items()]
        out = tmp_path / "pilot.md"
        pilot.report(plan, records, out, "test")
        return out.read_text()

    # of 20 truth classes: 6 -> 9 and 5 -> 7 classes named correctly (7/20 - 5/20 is 0.0999..., counted as 2)
    both = verdict({("epochs4", 100): 0.30, ("epochs8", 100): 0.45, ("epochs4", 101): 0.25, ("epochs8", 101): 0.35})
    assert "s100 +3; s101 +2" in both and "**Verdict:** met in both seeds" in both
    one = verdict({("epochs4", 100): 0.30, ("epochs8", 100): 0.45, ("epochs4", 101): 0.25, ("epochs8", 101): 0.30})
    assert "s101 +1" in one and "**Verdict:** not met" in one
    assert "- paper rule r1 truth-class coverage: s100 0.30 → 0.30; s101 0.30 → 0.30" in one  # shown, not judged
    assert "- source mAP (points)" not in one  # no pretrain records here: nothing to show
    assert "**Verdict:** not yet" in verdict({("epochs4", 100): 0.30})
