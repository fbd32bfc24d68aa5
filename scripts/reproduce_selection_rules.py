"""Selection rules beyond the paper on the calibrated SYNTHETIC testbed, built from committed run records.

The plan (question, rules and knob values, worlds, seeds, fractions, success criterion) is fixed in
`configs/experiments/selection_rules.yaml`. Two phases, never mixed:

  choose  world seed 1, training seeds 100-102, label fraction 0.25: every rule at each of its knob's values
          (SEAL pretrain -> adapt with the rule -> finetune); per rule the value with the best mean frame-mAP is
          chosen. Records: results/runs/selection_rules/w1/.
  report  world seed 0, training seeds 0-4 (paired with Table 5's rows, whose pretrains, runs and records are
          shared): every value at fraction 0.25, each rule's chosen value at 1.0. Records: .../w0/.

The report (`results/selection_rules.{md,png}`) compares each rule with the paper rule (Table 5's `seal_adapt`)
and with no adaptation (Table 5's `seal`), per round shows kept fraction, precision beside the majority class's
frequency and class coverage, and checks the plan's success criterion.

    python scripts/reproduce_selection_rules.py                    # run what is missing (choose phase first)
    python scripts/reproduce_selection_rules.py --budget-min 120   # start no new run after 2 hours
    python scripts/reproduce_selection_rules.py --report-only

On a fresh machine (run directories gone, records kept) two queues side by side first rebuild the shared SEAL
pretrains, then the runs:

    python scripts/reproduce_selection_rules.py --upstream-only --shard 0/2 &   # and 1/2 beside it; wait
    python scripts/reproduce_selection_rules.py --share &                       # twice: the queues share the runs
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Optional

import yaml
from reproduce_table5 import (  # the sibling script
    Plan,
    adapt_extract,
    finetune_extract,
    plan_version,
    row_match,
    with_plan_versions,
)

from seal_transfer.experiment import (
    Job,
    Runner,
    built_on_rebuild,
    by_seed,
    deal_shard,
    describe_interval,
    load_records,
    mean_std,
    paired_difference,
    parse_shard,
    planned_runs,
    pooled_difference,
    provenance_lines,
    run_claimed,
    shared_upstream_ready,
    verdict,
    verdict_phrase,
)
from seal_transfer.report.plots import save_figure
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
TABLE5_PLAN = "configs/experiments/table5.yaml"


def setting_name(rule: str, value: Any) -> str:
    return rule if value is None else f"{rule}_{value:g}"


def adapt_name(rule: str, value: Any, seed: int) -> str:
    """The name (and record file stem) of one rule setting's adapt run."""
    return f"adapt_{setting_name(rule, value)}__s{seed}"


class RulePlan:
    """The jobs of one world: Table 5's pretrain (and, on the report world, its baseline rows) + the rule runs."""

    def __init__(self, plan: dict[str, Any], table5: dict[str, Any], world: int, run_root: Path,
                 table5_run_root: Optional[Path], table5_records: Optional[Path]) -> None:
        self.plan = plan
        self.world = world
        self.run_root = run_root
        # Table 5's Plan builds the SEAL pretrain, adapt and finetune commands: the same arguments here, so the
        # report world's baseline rows are Table 5's own runs (matching hashes, shared records).
        self.table5 = Plan(table5, table5_run_root or run_root)
        self.table5_records = table5_records
        self._jobs: dict[str, Job] = {}

    def _shared(self, job: Job) -> Job:
        """A Table 5 job (and its upstream) whose record lives in Table 5's folder (report world only)."""
        if self.table5_records is not None:
            job.records_dir = self.table5_records
            for up in job.upstream:
                self._shared(up)
        return job

    def pretrain(self, seed: int) -> Job:
        return self._shared(self.table5.pretrain("seal", seed))

    def baseline(self, row: str, fraction: float, seed: int) -> Job:
        """A Table 5 row (no adaptation, the paper rule, the oracle) built here: a block's own baselines."""
        return self._shared(self.table5.finetune(row, fraction, seed))

    def adapt(self, rule: str, value: Any, seed: int) -> Job:
        spec = self.plan["rules"].get(rule) or self.plan["controls"][rule]  # a control: a rule with no knob
        name = adapt_name(rule, value, seed)
        if name not in self._jobs:
            args = [f"seed={seed}", *spec["args"], *([f"{spec['knob']}={value}"] if spec.get("knob") else []),
                    *self.table5.adapt_args]
            self._jobs[name] = Job(name=name, stage="adapt", args=args,
                                   run_dir=self.run_root / f"s{seed}" / f"adapt_{setting_name(rule, value)}",
                                   upstream=[self.pretrain(seed)],
                                   fields={"kind": "adapt", "rule": rule, "value": value, "world": self.world,
                                           "seed": seed}, extract=adapt_extract)
        return self._jobs[name]

    def finetune(self, rule: str, value: Any, fraction: float, seed: int) -> Job:
        name = f"finetune_{setting_name(rule, value)}__f{fraction:g}__s{seed}"
        if name not in self._jobs:
            args = [f"seed={seed}", f"data.target.label_fraction={fraction}",
                    *self.table5.stage_args.get("finetune", [])]
            self._jobs[name] = Job(name=name, stage="finetune", args=args,
                                   run_dir=self.run_root / f"s{seed}" / f"ft_{setting_name(rule, value)}_f{fraction:g}",
                                   upstream=[self.adapt(rule, value, seed)],
                                   fields={"kind": "finetune", "rule": rule, "value": value, "fraction": fraction,
                                           "world": self.world, "seed": seed}, extract=finetune_extract)
        return self._jobs[name]


def choose(plan: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule, from the choose world's records: {"done": every value has every choose seed, "value": the best
    value (by mean frame-mAP at the choose fraction; ties to the value listed first), "mean", "n"}. Nothing is
    reported as chosen, and no fraction-1.0 run starts, until "done"."""
    c = plan["choose"]
    out: dict[str, dict[str, Any]] = {}
    for rule, spec in plan["rules"].items():
        best: dict[str, Any] = {"done": True, "value": None, "mean": None, "n": 0}
        for value in spec["values"]:
            v = by_seed(records, "mAP", kind="finetune", rule=rule, value=value, fraction=c["fraction"])
            if sorted(v) != sorted(c["seeds"]):
                best["done"] = False
                continue
            m = sum(v.values()) / len(v)
            if best["mean"] is None or m > best["mean"]:
                best.update(value=value, mean=m, n=len(v))
        out[rule] = best
    return out


def is_chosen(chosen: dict[str, dict[str, Any]], rule: str, value: Any) -> bool:
    return rule in chosen and bool(chosen[rule]["done"]) and chosen[rule]["value"] == value  # controls: never


def _last_round(record: Optional[dict[str, Any]]) -> dict[str, Any]:
    rounds = (record or {}).get("rounds") or []
    return rounds[-1] if rounds else {}


def _avg(rows: list[dict[str, Any]], key: str) -> Optional[float]:
    xs = [float(r[key]) for r in rows if r.get(key) is not None]
    return sum(xs) / len(xs) if xs else None


def _f(x: Optional[float], digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _share(rows: list[dict[str, Any]], outcome: str) -> Optional[float]:
    """Mean over seeds of one outcome's share of the kept labels (`kept_label_breakdown`; runs before it: None)."""
    xs = [b[outcome] / sum(b.values()) for b in (r.get("kept_label_breakdown") for r in rows)
          if b and sum(b.values())]
    return sum(xs) / len(xs) if xs else None


def round_table(adapts: list[dict[str, Any]], title: str) -> list[str]:
    """Per setting and round, means over seeds: kept fraction, precision vs majority, class coverage, and where
    the labels go wrong (a second action left unnamed, a box with no action)."""
    lines = [title, "", "| setting | round | seeds | kept fraction | precision | majority | classes kept | "
             "largest share | truth-class coverage | true, 2nd action unnamed | on no-action boxes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in adapts:
        groups.setdefault(r["_setting"], []).append(r)
    for setting, recs in groups.items():
        n_rounds = max(len(r.get("rounds") or []) for r in recs)
        for i in range(n_rounds):
            rows = [r["rounds"][i] for r in recs if len(r.get("rounds") or []) > i]
            lines.append(f"| {setting} | {i + 1} | {len(rows)} | {_f(_avg(rows, 'kept_fraction'))} | "
                         f"{_f(_avg(rows, 'pseudo_label_precision'))} | {_f(_avg(rows, 'majority_class_frequency'))} | "
                         f"{_f(_avg(rows, 'kept_classes'), 1)} of {_f(_avg(rows, 'truth_classes'), 1)} | "
                         f"{_f(_avg(rows, 'largest_class_share'))} | {_f(_avg(rows, 'kept_truth_class_coverage'))} | "
                         f"{_f(_share(rows, 'true_other_action_unlabelled'))} | {_f(_share(rows, 'no_action_box'))} |")
    return lines + [""]


REBUILT_NOTE = ("† These seeds' runs were built on an upstream run ({upstream}) rebuilt in a later session for its "
                "weights, which did not reproduce the original bit-exactly (CPU training here is not bit-reproducible "
                "from one session to the next, even at the same thread count; each record's `rebuilds` holds the "
                "conditions and what the rebuild measured). Their pairing with the baseline rows, which used the "
                "original, is therefore not exact: the rebuild's difference adds to the interval's noise.")


def rebuilt_seeds(records: list[dict[str, Any]], table5: list[dict[str, Any]], rule: str, value: Any,
                  fraction: float) -> list[int]:
    """Seeds whose finetune for this setting was built on a rebuilt upstream (adapt or Table 5's SEAL pretrain)
    whose weights differ from the run the baseline rows used, so its pairing with them is not exact."""
    by_name = {r["name"]: r for r in [*records, *table5] if "name" in r}
    out = []
    for f in records:
        if (f.get("kind"), f.get("rule"), f.get("value"), f.get("fraction")) != ("finetune", rule, value, fraction):
            continue
        adapt = by_name.get(adapt_name(rule, value, f["seed"]))
        pretrain = by_name.get(f"pretrain_seal__s{f['seed']}")
        if built_on_rebuild(f, adapt) or (adapt is not None and built_on_rebuild(adapt, pretrain)):
            out.append(int(f["seed"]))
    return sorted(out)


def block_section(plan: dict[str, Any], name: str, records: list[dict[str, Any]], chosen: dict[str, dict[str, Any]],
                  table5_version: int, figure: Optional[dict[str, dict[float, dict[str, Any]]]] = None,
                  paper_gain: Optional[dict[float, dict[str, Any]]] = None) -> list[str]:
    """One block: every setting beside the block's own baselines (built on the block's pretrains), paired by seed.
    `figure`, if given, receives each chosen setting's paired differences per fraction (as build_report's), and
    `paper_gain` the paper rule's paired difference from no adaptation per fraction."""
    block, rw = plan["report"]["blocks"][name], plan["report"]["world_seed"]
    fraction = block["fraction"]
    lines = [f"## Block {name} (world {rw}, fraction {fraction:g}): every value beside its own baselines", "",
             "Everything here — SEAL pretrains, baseline rows, rule runs — was built inside the block "
             f"(`results/runs/selection_rules/{block_dir(rw, name)}/`), so each difference pairs runs on the same "
             "pretrain, seed by seed; why the block exists is written in the plan. Compare settings with the block's "
             "own baselines, not with the tables above.", ""]
    pre = sorted((r for r in records if r.get("kind") == "pretrain_seal"), key=lambda r: r["seed"])
    if pre:
        lines += ["Source (SEAL Clips) mAP % of the block's pretrains: "
                  + "; ".join(f"s{r['seed']} {100 * r['mAP']:.2f}" for r in pre) + ".", ""]
    any_rebuilt = False
    for f in [fraction, *(block.get("also_at") or [])]:
        base = {row: {k: 100 * x for k, x in by_seed(records, "mAP", kind="finetune", fraction=f,
                                                      **row_match(row, table5_version)).items()}
                for row in block["baseline_rows"]}
        lines += [f"Fraction {f:g}" + ("" if f == fraction else " (chosen values only)") + ":", "",
                  "| setting | frame-mAP (%) mean ± std | seeds | Δ vs paper rule [95% CI] | Δ vs no adaptation "
                  "[95% CI] |", "|---|---|---|---|---|"]
        for row, v in base.items():
            cell = "{:.2f} ± {:.2f}".format(*mean_std(list(v.values()))) if v else "(not run yet)"
            d_none = paired_difference(v, base["seal"]) if row != "seal" and v and base.get("seal") else None
            vs_none = describe_interval(d_none) if d_none else "—"  # the paper's own claim, inside the block
            if paper_gain is not None and row == "seal_adapt" and d_none:
                paper_gain[f] = d_none
            lines.append(f"| baseline: {row} | {cell} | {len(v)} | — | {vs_none} |")
        for rule, spec in plan["rules"].items():
            for value in spec["values"]:
                if f != fraction and not is_chosen(chosen, rule, value):
                    continue
                v = {k: 100 * x for k, x in by_seed(records, "mAP", kind="finetune", rule=rule, value=value,
                                                      fraction=f).items()}
                label = setting_name(rule, value) + (" (chosen)" if is_chosen(chosen, rule, value) else "")
                rebuilt = rebuilt_seeds(records, [], rule, value, f)  # the block's own pretrains are in `records`
                if rebuilt:
                    any_rebuilt = True
                    label += f" †{','.join(f's{x}' for x in rebuilt)}"
                if not v:
                    lines.append(f"| {label} | (not run yet) | 0 | — | — |")
                    continue
                d_paper = paired_difference(v, base.get("seal_adapt", {}))
                d_none = paired_difference(v, base.get("seal", {}))
                lines.append(f"| {label} | {'{:.2f} ± {:.2f}'.format(*mean_std(list(v.values())))} | {len(v)} | "
                             f"{describe_interval(d_paper)} | {describe_interval(d_none)} |")
                if figure is not None and is_chosen(chosen, rule, value):
                    d_paper["rebuilt"] = d_none["rebuilt"] = rebuilt  # for the replication table's †
                    figure.setdefault(rule, {})[f] = {"paper": d_paper, "none": d_none}
        lines += [""]
    if any_rebuilt:
        lines += [REBUILT_NOTE.format(upstream="the block's SEAL pretrain, or the rule's adapt"), ""]
    lines += control_table(plan, block, records, table5_version)
    adapts = [{**r, "_setting": setting_name(r["rule"], r.get("value"))} for r in records
              if r.get("kind") == "adapt" and "rule" in r]
    adapts += [{**r, "_setting": "baseline: paper rule"} for r in records
               if r.get("kind") == "adapt" and r.get("labels") == "rule"]
    adapts.sort(key=lambda r: (not r["_setting"].startswith("baseline"), r["_setting"], r["seed"]))
    if adapts:
        lines += round_table(adapts, f"### Pseudo labels per round (block {name}, means over seeds)")
    return lines


# A random-label control against the setting it isolates, read as the plan fixed before its runs.
READING = {
    "below": "the paired 95 % interval lies below zero: the setting's labels carry information beyond their spread "
             "over classes.",
    "inconclusive": "the paired 95 % interval includes zero: spread over classes alone explains the setting's "
                    "result at this power.",
    "above": "the paired 95 % interval lies above zero: random labels of the same boxes and class frequencies beat "
             "the setting's own.",
    "too few seeds": "too few paired seeds to read.",
}


def replication_section(original: dict[str, dict[float, dict[str, Any]]],
                        blocks: dict[str, dict[str, dict[float, dict[str, Any]]]],
                        chosen: dict[str, dict[str, Any]],
                        paper_gains: Optional[dict[str, dict[float, dict[str, Any]]]] = None) -> list[str]:
    """Each chosen setting's paired differences on Table 5's pretrains beside the same on each block's own
    pretrains: two independent replicates of one comparison (other pretrain weights, the same world and seeds).
    A last column pools both sets' per-seed differences (post hoc: the plan's criterion is per set).
    `paper_gains` (set -> fraction -> the paper rule minus no adaptation; sets 'original' and each block) adds
    the paper's own claim as the first rows."""
    if not any(blocks.values()):
        return []
    lines = ["## Replication: the paper rule and the chosen settings on two sets of pretrains", "",
             "The same comparison made twice: on Table 5's pretrains (the world-0 tables above) and on a block's own "
             "rebuilt pretrains. *same verdict* means both 95 % intervals say the same (both above zero, both "
             "below, or both include it). *pooled* takes every set's per-seed differences as one sample (ten pretrains "
             "instead of five); it was added after the runs, once the two sets disagreed, so it is exploratory, not "
             "the plan's criterion. † marks the seeds built on a rebuild that did not reproduce, as in the tables "
             "above.", "",
             "| setting | fraction | vs | Table 5's pretrains | " + " | ".join(f"block {b}" for b in blocks)
             + " | same verdict | pooled (post hoc) |", "|---|---|---|---|" + "---|" * len(blocks) + "---|---|"]
    gains = paper_gains or {}
    rows = []  # (setting, fraction, compared with, its difference on Table 5's pretrains, the same on each block)
    for fraction, first in sorted(gains.get("original", {}).items()):
        rows.append(("paper rule", fraction, "none", first, [gains.get(b, {}).get(fraction) for b in blocks]))
    for rule in sorted(original):
        for fraction in sorted(original[rule]):
            for key in ("paper", "none"):
                rows.append((setting_name(rule, chosen[rule]["value"]), fraction, key, original[rule][fraction][key],
                             [b.get(rule, {}).get(fraction, {}).get(key) for b in blocks.values()]))
    for name, fraction, key, first, others in rows:
        cells = [describe_interval(d) + _dagger(d) if d else "—" for d in others]
        verdicts = {verdict(d) for d in [first, *others] if d and d["n"] > 1}
        same = ("—" if len(verdicts) == 0 or any(d is None or d["n"] < 2 for d in others)
                else "yes" if len(verdicts) == 1 else "**no**")
        pooled = describe_interval(pooled_difference(first, *others)) if all(others) else "—"
        lines.append(f"| {name} | {fraction:g} | {'paper rule' if key == 'paper' else 'no adaptation'} | "
                     f"{describe_interval(first)}{_dagger(first)} | " + " | ".join(cells) + f" | {same} | {pooled} |")
    return lines + [""]


def _dagger(diff: Optional[dict[str, Any]]) -> str:
    """' †s4' for a difference some of whose seeds were built on a non-reproducing rebuild (its `rebuilt` seeds, set
    where the report pairs the runs; see REBUILT_NOTE)."""
    rebuilt = (diff or {}).get("rebuilt") or []
    return f" †{','.join(f's{x}' for x in rebuilt)}" if rebuilt else ""


def control_table(plan: dict[str, Any], block: dict[str, Any], records: list[dict[str, Any]],
                  table5_version: int) -> list[str]:
    """A block's controls at its fraction, each paired by seed with the setting it isolates and the baselines."""
    names = block.get("controls") or []
    if not names:
        return []
    fraction = block["fraction"]

    def pct(**match: Any) -> dict[int, float]:
        return {k: 100 * x for k, x in by_seed(records, "mAP", kind="finetune", fraction=fraction, **match).items()}

    lines = [f"Controls (fraction {fraction:g}; not candidates — each isolates what one setting's result comes from, "
             "see the plan):", "",
             "| control | frame-mAP (%) mean ± std | seeds | Δ vs the setting it isolates [95% CI] | Δ vs paper rule "
             "[95% CI] | Δ vs no adaptation [95% CI] |", "|---|---|---|---|---|---|"]
    paper, none = pct(**row_match("seal_adapt", table5_version)), pct(**row_match("seal", table5_version))
    readings: list[str] = []
    for name in names:
        target = plan["controls"][name]["isolates"]
        v = pct(rule=name, value=None)
        if not v:
            lines.append(f"| {name} | (not run yet) | 0 | — | — | — |")
            continue
        isolated = pct(rule=target["rule"], value=target["value"])
        readings.append(f"- **{name}** vs {setting_name(target['rule'], target['value'])}: "
                        f"{READING[verdict(paired_difference(v, isolated))]}")
        lines.append(f"| {name} | {'{:.2f} ± {:.2f}'.format(*mean_std(list(v.values())))} | {len(v)} | "
                     f"{setting_name(target['rule'], target['value'])}: "
                     f"{describe_interval(paired_difference(v, isolated))} | "
                     f"{describe_interval(paired_difference(v, paper))} | "
                     f"{describe_interval(paired_difference(v, none))} |")
    return lines + [""] + readings + ([""] if readings else [])


def build_report(plan: dict[str, Any], rec: dict[int, list[dict[str, Any]]], table5: list[dict[str, Any]],
                 out: Path, note: str, table5_version: int = 1,
                 blocks: Optional[dict[str, list[dict[str, Any]]]] = None) -> None:
    """`table5`: Table 5's records; its adapt rows are taken from plan version `table5_version`, the one whose
    adapt arguments the rules share. `blocks`: each report-world block's records."""
    blocks = blocks or {}
    block_fractions = {b["fraction"] for b in (plan["report"].get("blocks") or {}).values()}
    cw, rw = plan["choose"]["world_seed"], plan["report"]["world_seed"]
    chosen = choose(plan, rec[cw])
    lines = ["# Selection rules beyond the paper on the calibrated SYNTHETIC testbed", "",
             "**Synthetic results** (world `small`): they test whether a rule stops the pseudo-label collapse on a "
             "controlled transfer testbed, not the rules' value on AVA.", "",
             f"**Question (fixed before the runs).** {plan['question']}", "",
             f"**Success criterion.** {plan['success']}", "",
             f"Plan: `configs/experiments/selection_rules.yaml`. Settings chosen on world seed {cw} (training seeds "
             f"{plan['choose']['seeds']}, fraction {plan['choose']['fraction']:g}); reported on world seed {rw} "
             f"(training seeds {plan['report']['seeds']}, paired with Table 5's rows, plan version {table5_version}, "
             "from `results/runs/table5/`).",
             "", f"## Choosing each rule's setting (world {cw}, fraction {plan['choose']['fraction']:g})", "",
             "| rule | knob | value | target frame-mAP (%) mean ± std | seeds | chosen |", "|---|---|---|---|---|---|"]
    for rule, spec in plan["rules"].items():
        for value in spec["values"]:
            v = by_seed(rec[cw], "mAP", kind="finetune", rule=rule, value=value, fraction=plan["choose"]["fraction"])
            cell = "(not run yet)" if not v else "{:.2f} ± {:.2f}".format(*mean_std([100 * x for x in v.values()]))
            mark = "**chosen**" if is_chosen(chosen, rule, value) else ""
            lines.append(f"| {rule} | {spec['knob'] or '—'} | {'—' if value is None else f'{value:g}'} | {cell} | "
                         f"{len(v)} | {mark} |")
    for row in plan["choose"].get("reference_rows", []):
        v = by_seed(rec[cw], "mAP", kind="finetune", fraction=plan["choose"]["fraction"],
                    **row_match(row, table5_version))
        cell = "(not run yet)" if not v else "{:.2f} ± {:.2f}".format(*mean_std([100 * x for x in v.values()]))
        lines.append(f"| reference: Table 5's {row} row | — | — | {cell} | {len(v)} | (not a candidate) |")
    pending = [r for r, c in chosen.items() if not c["done"]]
    if pending:
        lines += ["", f"Choose phase incomplete for: {', '.join(pending)} — no setting of theirs is reported as chosen "
                  "yet, and their fraction-1.0 runs wait."]

    seal_ft = [r for r in table5 if r.get("kind") == "finetune"]
    any_rebuilt = False
    goal_lines: list[str] = []
    figure: dict[str, dict[float, dict[str, Any]]] = {}
    paper_gains: dict[str, dict[float, dict[str, Any]]] = {"original": {}, **{name: {} for name in blocks}}
    for fraction in plan["report"]["fractions"]:
        base = {row: {k: 100 * x for k, x in by_seed(seal_ft, "mAP", fraction=fraction,
                                                      **row_match(row, table5_version)).items()}
                for row in plan["baseline_rows"]}
        if base.get("seal_adapt") and base.get("seal"):
            paper_gains["original"][fraction] = paired_difference(base["seal_adapt"], base["seal"])
        lines += ["", f"## World {rw}, target label fraction {fraction:g}", "",
                  "| setting | frame-mAP (%) mean ± std | seeds | Δ vs paper rule [95% CI] | Δ vs no adaptation "
                  "[95% CI] |", "|---|---|---|---|---|"]
        for row in plan["baseline_rows"]:
            v = base[row]
            cell = "{:.2f} ± {:.2f}".format(*mean_std(list(v.values()))) if v else "(not run yet)"
            lines.append(f"| Table 5: {row} | {cell} | {len(v)} | — | — |")
        for rule, spec in plan["rules"].items():
            if fraction == plan["choose"]["fraction"]:
                values = spec["values"]
            else:
                values = [chosen[rule]["value"]] if chosen[rule]["done"] else []
            for value in values:
                v = {k: 100 * x for k, x in by_seed(rec[rw], "mAP", kind="finetune", rule=rule, value=value,
                                                      fraction=fraction).items()}
                name = setting_name(rule, value) + (" (chosen)" if is_chosen(chosen, rule, value) else "")
                rebuilt = rebuilt_seeds(rec[rw], table5, rule, value, fraction)
                if rebuilt:
                    any_rebuilt = True
                    name += f" †{','.join(f's{x}' for x in rebuilt)}"
                if not v:
                    where = f"(run in block {', '.join(blocks)})" if fraction in block_fractions else "(not run yet)"
                    lines.append(f"| {name} | {where} | 0 | — | — |")
                    continue
                d_paper = paired_difference(v, base.get("seal_adapt", {}))
                d_none = paired_difference(v, base.get("seal", {}))
                lines.append(f"| {name} | {'{:.2f} ± {:.2f}'.format(*mean_std(list(v.values())))} | {len(v)} | "
                             f"{describe_interval(d_paper)} | {describe_interval(d_none)} |")
                if is_chosen(chosen, rule, value):
                    d_paper["rebuilt"] = d_none["rebuilt"] = rebuilt  # for the replication table's †
                    figure.setdefault(rule, {})[fraction] = {"paper": d_paper, "none": d_none}
                if is_chosen(chosen, rule, value) and fraction == plan["choose"]["fraction"]:
                    goal_lines.append(goal_line(rule, value, v, base, rec[rw]))
    if any_rebuilt:
        lines += ["", REBUILT_NOTE.format(upstream="Table 5's SEAL pretrain, or the rule's adapt")]
        drift = [f"s{r['seed']} {100 * r['mAP']:.2f} → {100 * r['rebuilds'][-1]['metrics']['mAP']:.2f}"
                 for r in table5 if r.get("kind") == "pretrain_seal" and r.get("rebuilds")
                 and "mAP" in r["rebuilds"][-1].get("metrics", {})]
        if drift:
            lines += ["", "Source (SEAL Clips) mAP % of the rebuilt pretrains, original → rebuild: "
                      + "; ".join(drift) + "."]
    lines += ["", "## The goal, per rule at its chosen setting (world 0, fraction 0.25)", ""]
    lines += goal_lines or ["- No rule has both a chosen setting and report-world runs yet."]
    lines += ["", "What any selection could keep from the round-1 labeller, and why coverage alone can be met with "
              "wrong labels: `results/labeller_ceiling.md` (`scripts/analyse_labeller_ceiling.py`)."]
    adapts = []
    for r in rec[rw]:
        if r.get("kind") == "adapt":
            adapts.append({**r, "_setting": setting_name(r["rule"], r.get("value"))})
    for r in table5:
        if (r.get("kind") == "adapt" and r.get("lambda_c") == 0.3 and r.get("labels") in ("rule", "oracle")
                and r.get("plan_version") == table5_version):
            adapts.append({**r, "_setting": f"Table 5: {'paper rule' if r['labels'] == 'rule' else 'oracle'}"})
    adapts.sort(key=lambda r: (not r["_setting"].startswith("Table 5"), r["_setting"], r["seed"]))
    if adapts:
        lines += [""] + round_table(adapts, f"## Pseudo labels per round (world {rw}, means over seeds)")
    choose_adapts = [{**r, "_setting": setting_name(r["rule"], r.get("value")) if "rule" in r else "paper rule"}
                     for r in rec[cw] if r.get("kind") == "adapt" and ("rule" in r or r.get("labels") == "rule")]
    choose_adapts.sort(key=lambda r: (r["_setting"] != "paper rule", r["_setting"], r["seed"]))
    if choose_adapts:
        lines += [""] + round_table(choose_adapts, f"## Pseudo labels per round (world {cw}, the choose phase, means "
                                                   "over seeds)")
    if adapts or choose_adapts:
        lines += ["In the round tables, the last two columns come from each round's `kept_label_breakdown` (runs made "
                  "before it show —; `results/pseudo_label_errors.md` sorts those runs' labels from their run "
                  "directories).", ""]
    block_figures: dict[str, dict[str, dict[float, dict[str, Any]]]] = {name: {} for name in blocks}
    for name, records in blocks.items():
        lines += block_section(plan, name, records, chosen, table5_version, block_figures[name], paper_gains[name])
    lines += replication_section(figure, block_figures, chosen, paper_gains)
    lines += ["![selection rules](selection_rules.png)", "",
              *provenance_lines(rec[cw] + rec[rw] + [r for b in blocks.values() for r in b], note)]
    with atomic_write(out) as handle:
        handle.write("\n".join(lines))
    draw_figure(figure, adapts, out.with_suffix(".png"), choose_adapts, cw, rw, block_figures)
    print(f"wrote {out}")


def goal_line(rule: str, value: Any, v: dict[int, float], base: dict[str, dict[int, float]],
              records: list[dict[str, Any]]) -> str:
    last = [_last_round(r) for r in records if r.get("kind") == "adapt" and r.get("rule") == rule
            and r.get("value") == value]
    coverage, precision = _avg(last, "kept_truth_class_coverage"), _avg(last, "pseudo_label_precision")
    majority = _avg(last, "majority_class_frequency")
    d_paper = paired_difference(v, base.get("seal_adapt", {}))
    d_none = paired_difference(v, base.get("seal", {}))
    cover_ok = coverage is not None and coverage >= 0.8
    prec_ok = precision is not None and majority is not None and precision >= 2 * majority
    beats = verdict(d_paper) == "above" and verdict(d_none) == "above"
    parts = [f"coverage {_f(coverage)} ({'≥' if cover_ok else '<'} 0.8)",
             f"precision {_f(precision)} vs 2 × majority {_f(2 * majority if majority is not None else None)} "
             f"({'met' if prec_ok else 'not met'})",
             f"vs paper rule: {verdict_phrase(d_paper)}", f"vs no adaptation: {verdict_phrase(d_none)}"]
    moon = ""
    if base.get("seal_oracle") and base.get("seal") and v:
        gap = mean_std(list(base["seal_oracle"].values()))[0] - mean_std(list(base["seal"].values()))[0]
        closed = mean_std(list(v.values()))[0] - mean_std(list(base["seal"].values()))[0]
        moon = f"; closes {closed / gap:.0%} of the SEAL → oracle gap" if gap > 0 else "; no SEAL → oracle gap"
    met = "**goal met**" if cover_ok and prec_ok and beats else "goal not met"
    return f"- **{setting_name(rule, value)}**: {met} — " + "; ".join(parts) + moon + "."


def draw_figure(figure: dict[str, dict[float, dict[str, Any]]], adapts: list[dict[str, Any]], out_png: Path,
                choose_adapts: Optional[list[dict[str, Any]]] = None, choose_world: int = 1,
                report_world: int = 0, block_figures: Optional[dict[str, dict[str, dict[float, Any]]]] = None
                ) -> None:
    """Left: last-round precision against the largest class's share per setting (collapse = right, low), filled
    for the report world, hollow for the choose world; right: chosen settings' paired Δ vs the paper rule with
    95 % intervals, per label fraction, on Table 5's pretrains (circles) and on each block's (squares)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for world, recs, filled in ((report_world, adapts, True), (choose_world, choose_adapts or [], False)):
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in recs:
            groups.setdefault(r["_setting"], []).append(_last_round(r))
        first = True
        for setting, rows in groups.items():
            x, y = _avg(rows, "largest_class_share"), _avg(rows, "pseudo_label_precision")
            if x is None or y is None:
                continue
            style = {} if filled else {"facecolors": "none", "edgecolors": "C0"}
            ax1.scatter([x], [y], s=30, label=f"world {world}" if first else None, **style)
            first = False
            ax1.annotate(setting.replace("Table 5: ", ""), (x, y), fontsize=7, xytext=(3, 3),
                         textcoords="offset points", color="black" if filled else "C0")
    if adapts or choose_adapts:
        ax1.legend(fontsize=7, loc="lower left")
    ax1.set(xlabel="last round: largest class's share of kept labels", ylabel="last round: pseudo-label precision",
            title="collapse (right) vs precision", xlim=(0, 1.05), ylim=(0, 1.05))
    sets = [("Table 5's pretrains", figure, "o"),
            *((f"block {name}", fig_b, "s") for name, fig_b in (block_figures or {}).items())]
    rules = sorted({rule for _, fig_s, _ in sets for rule in fig_s})
    fractions = sorted({f for _, fig_s, _ in sets for r in fig_s.values() for f in r})
    series = [(label, fig_s, marker, fraction) for fraction in fractions for label, fig_s, marker in sets]
    for j, (label, fig_s, marker, fraction) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, rule in enumerate(rules):
            d = fig_s.get(rule, {}).get(fraction, {}).get("paper")
            if d and d["n"] > 1:
                xs.append(i + 0.6 * ((j + 0.5) / len(series) - 0.5))
                ys.append(d["mean"])
                lo.append(d["mean"] - d["low"])
                hi.append(d["high"] - d["mean"])
        if xs:
            ax2.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, capsize=3, color=f"C{fractions.index(fraction)}",
                         mfc="none" if marker == "s" else None, label=f"fraction {fraction:g}, {label}")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xticks(range(len(rules)), rules, rotation=20, fontsize=8)
    ax2.set(ylabel="Δ frame-mAP vs paper rule (points)", title="chosen settings, paired 95 % CI")
    if rules:
        ax2.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22))  # below: off the bars
    fig.suptitle("SYNTHETIC testbed: selection rules beyond the paper", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def choose_jobs(plan: dict[str, Any], choose_plan: RulePlan) -> list[tuple[RulePlan, Job]]:
    """The choose phase, seed by seed: every rule at each of its knob's values, then the reference rows."""
    c = plan["choose"]
    jobs: list[tuple[RulePlan, Job]] = []
    for seed in c["seeds"]:
        for rule, spec in plan["rules"].items():
            jobs += [(choose_plan, choose_plan.finetune(rule, v, c["fraction"], seed)) for v in spec["values"]]
        jobs += [(choose_plan, choose_plan.table5.finetune(row, c["fraction"], seed))
                 for row in c.get("reference_rows", [])]
    return jobs


def report_jobs(plan: dict[str, Any], report_plan: RulePlan, chosen: dict[str, dict[str, Any]]
                ) -> list[tuple[RulePlan, Job]]:
    """The report world, most informative first (the order changes no run, only which runs a budget reaches):
    each rule's chosen value at the choose fraction (what the success criterion reads), seed by seed; then the
    chosen values at the other fractions; then every other knob value at the choose fraction. A rule whose choice
    is not made yet has all its values in the last group, and nothing at the other fractions."""
    c, r = plan["choose"], plan["report"]
    done = [rule for rule in plan["rules"] if chosen[rule]["done"]]
    jobs: list[tuple[RulePlan, Job]] = []
    for seed in r["seeds"]:
        jobs += [(report_plan, report_plan.finetune(rule, chosen[rule]["value"], c["fraction"], seed))
                 for rule in done]
    for fraction in (f for f in r["fractions"] if f != c["fraction"]):
        for seed in r["seeds"]:
            jobs += [(report_plan, report_plan.finetune(rule, chosen[rule]["value"], fraction, seed))
                     for rule in done]
    if r.get("blocks"):  # the values not yet reported are run in the blocks, beside their own baselines
        return jobs
    for seed in r["seeds"]:
        for rule, spec in plan["rules"].items():
            jobs += [(report_plan, report_plan.finetune(rule, v, c["fraction"], seed))
                     for v in spec["values"] if not is_chosen(chosen, rule, v)]
    return jobs


def block_jobs(plan: dict[str, Any], name: str, block_plan: RulePlan, chosen: dict[str, dict[str, Any]]
               ) -> list[tuple[RulePlan, Job]]:
    """One block of the report world (its own pretrains, records and baselines), seed by seed: the baseline rows,
    then the knob values not yet reported, then the chosen values -- so a budget that stops mid-block leaves
    complete, exactly paired seeds behind. Then the block's controls, seed by seed; then, per fraction in `also_at`,
    seed by seed, the baselines and the chosen values only."""
    block = plan["report"]["blocks"][name]
    fraction = block["fraction"]
    jobs: list[tuple[RulePlan, Job]] = []
    for seed in plan["report"]["seeds"]:
        jobs += [(block_plan, block_plan.baseline(row, fraction, seed)) for row in block["baseline_rows"]]
        for want_chosen in (False, True):
            for rule, spec in plan["rules"].items():
                jobs += [(block_plan, block_plan.finetune(rule, v, fraction, seed)) for v in spec["values"]
                         if is_chosen(chosen, rule, v) == want_chosen]
    for seed in plan["report"]["seeds"]:  # the controls, seed by seed (before also_at: see the plan)
        jobs += [(block_plan, block_plan.finetune(control, None, fraction, seed))
                 for control in block.get("controls") or []]
    for other in block.get("also_at") or []:
        for seed in plan["report"]["seeds"]:
            jobs += [(block_plan, block_plan.baseline(row, other, seed)) for row in block["baseline_rows"]]
            jobs += [(block_plan, block_plan.finetune(rule, chosen[rule]["value"], other, seed))
                     for rule in plan["rules"] if chosen[rule]["done"]]
    return jobs


def world_runner(plan: dict[str, Any], world: int, records_dir: Path, run_root: Path,
                 deadline: Optional[float] = None) -> Runner:
    """The runner of one world's (or block's) runs: the plan's config on its synthetic world, no progress bars. The
    one place their common arguments are written, so every script that finds these runs' records hashes alike."""
    common = [f"data.synthetic.preset={plan['preset']}", f"data.synthetic.seed={world}",
              "trainer.enable_progress_bar=false"]
    return Runner(ROOT, plan["experiment"], [plan["config"]], common, records_dir, run_root, deadline)


def check_controls(plan: dict[str, Any], where: str) -> None:
    """Refuse, before any run, a block control the plan does not define or one that isolates no planned value."""
    controls = plan.get("controls") or {}
    for name, block in (plan["report"].get("blocks") or {}).items():
        for control in block.get("controls") or []:
            if control not in controls:
                raise SystemExit(f"{where}: report.blocks.{name}.controls names '{control}', which controls: lacks")
    for control, spec in controls.items():
        target = spec.get("isolates") or {}
        if control in plan["rules"] or target.get("value") not in plan["rules"].get(target.get("rule"), {}).get(
                "values", []):
            raise SystemExit(f"{where}: controls.{control}: its name must not be a rule's, and its 'isolates' must "
                             "name a rule and one of that rule's values")


def block_dir(world: int, name: str) -> str:
    """The folder name of a block's run directories and records (beside the report world's `w<world>`)."""
    return f"w{world}_{name}"


def upstream_seeds(items: list[Any], shard: Optional[tuple[int, int]]) -> list[Any]:
    """The pretrains (report seeds) this shard (re)builds under --upstream-only: dealt out by position, not by
    name hash, so five pretrains over two shards split 3/2 rather than however the hash falls."""
    return list(items) if shard is None else list(items)[shard[0]::shard[1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="configs/experiments/selection_rules.yaml")
    ap.add_argument("--run-root", default="runs/selection_rules", help="run directories (not committed)")
    ap.add_argument("--records", default="results/runs/selection_rules", help="committed run records (w<seed>/)")
    ap.add_argument("--table5-runs", default="runs/table5", help="Table 5's run directories (shared pretrains)")
    ap.add_argument("--table5-records", default="results/runs/table5")
    ap.add_argument("--out", default="results/selection_rules.md")
    ap.add_argument("--budget-min", type=float, default=None, help="start no new run after this many minutes")
    ap.add_argument("--shard", default=None, metavar="I/N",
                    help="run only shard I of N (0-based): two queues side by side, e.g. 0/2 and 1/2, never run the "
                         "same adapt; the SEAL pretrains must exist (they are Table 5's on the report world)")
    ap.add_argument("--share", action="store_true",
                    help="run beside other invocations started with --share, sharing the work as it goes: each takes "
                         "the next run no other holds (a lock per adapt run under RUN_ROOT/claims); the SEAL "
                         "pretrains must exist, as for --shard")
    ap.add_argument("--upstream-only", action="store_true",
                    help="only (re)build the report world's shared SEAL pretrains, weights included (with --shard: "
                         "this shard's share of them), so that sharded queues can start")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--dry-run", action="store_true",
                    help="list every planned run (and its upstream) as 'reuse' (a matching record) or 'run'")
    args = ap.parse_args()
    if args.share and args.shard:
        raise SystemExit("--share and --shard are two ways to split the work: give one")
    plan = yaml.safe_load((ROOT / args.plan).read_text())
    table5 = yaml.safe_load((ROOT / TABLE5_PLAN).read_text())
    cw, rw = plan["choose"]["world_seed"], plan["report"]["world_seed"]
    if table5["world_seed"] != rw or table5["config"] != plan["config"] or table5["preset"] != plan["preset"]:
        raise SystemExit(f"{args.plan}: the report world must be Table 5's (world {table5['world_seed']}, "
                         f"{table5['config']}, preset {table5['preset']}) for the rows to pair")
    check_controls(plan, args.plan)
    records_root, table5_records = ROOT / args.records, ROOT / args.table5_records
    started = time.time()
    note = "report rebuilt from records only (--report-only)."
    if not args.report_only:
        deadline = started + 60 * args.budget_min if args.budget_min else None
        def runner_for(world: int, folder: str) -> Runner:
            return world_runner(plan, world, records_root / folder, ROOT / args.run_root / folder, deadline)

        choose_plan = RulePlan(plan, table5, cw, ROOT / args.run_root / f"w{cw}", None, None)
        report_plan = RulePlan(plan, table5, rw, ROOT / args.run_root / f"w{rw}", ROOT / args.table5_runs / f"w{rw}",
                               table5_records)
        # A block keeps everything -- pretrains, baselines, rule runs -- in its own run root and record folder.
        blocks = {name: RulePlan(plan, table5, rw, ROOT / args.run_root / block_dir(rw, name),
                                 ROOT / args.run_root / block_dir(rw, name), records_root / block_dir(rw, name))
                  for name in plan["report"].get("blocks") or {}}
        runner_of = {id(choose_plan): runner_for(cw, f"w{cw}"), id(report_plan): runner_for(rw, f"w{rw}"),
                     **{id(bp): runner_for(rw, block_dir(rw, name)) for name, bp in blocks.items()}}
        choose_records = records_root / f"w{cw}"

        def block_phase(name: str):
            return lambda: block_jobs(plan, name, blocks[name], choose(plan, load_records(choose_records)))

        # The report world's order depends on the choice, so it is planned only after the choose phase has run.
        phases = [lambda: choose_jobs(plan, choose_plan),
                  lambda: report_jobs(plan, report_plan, choose(plan, load_records(choose_records))),
                  *(block_phase(name) for name in blocks)]
        if args.dry_run:
            planned = [(runner_of[id(p)], job) for phase in phases for p, job in phase()]
            labels = {id(r): r.records_dir.name for r in runner_of.values()}  # w1, w0, w0_<block>
            print("\n".join(planned_runs(planned, ROOT, labels)))
            return
        shard = parse_shard(args.shard)
        if args.upstream_only:
            # A block exists because Table 5's pretrains can no longer be reproduced: only its own are built then.
            upstream = ([(bp, seed) for bp in blocks.values() for seed in plan["report"]["seeds"]] if blocks
                        else [(report_plan, seed) for seed in plan["report"]["seeds"]])
            for p, seed in upstream_seeds(upstream, shard):
                if runner_of[id(p)].ensure(p.pretrain(seed), need_weights=True) is None:
                    print("time budget reached before the pretrains were built")
                    break
            built = sum(len(r.ran) for r in runner_of.values())
            print(f"pretrains: {built} built, {sum(len(r.reused) for r in runner_of.values())} already there")
            return
        for phase in phases:
            planned = phase()
            mine = {id(job) for job in deal_shard([job for _, job in planned], shard)}
            todo = [(runner_of[id(p)], job) for p, job in planned if id(job) in mine]
            if shard is not None or args.share:
                # A run with a matching record needs nothing upstream; only the rest wait for their pretrain.
                ready = [(runner, job) for runner, job in todo
                         if runner.record_of(job) is not None or shared_upstream_ready(runner, job)]
                if len(ready) < len(todo):
                    first = next(job.name for runner, job in todo if (runner, job) not in ready)
                    print(f"{'shared queue' if args.share else f'shard {args.shard}'}: skipping "
                          f"{len(todo) - len(ready)} runs whose SEAL pretrain does not exist yet (first: {first}); "
                          "build them first with --upstream-only")
                todo = ready
            done = (run_claimed(todo, ROOT / args.run_root / "claims") if args.share
                    else all(runner.ensure(job) is not None for runner, job in todo))
            if not done:
                print("time budget reached; the next invocation continues from the records")
                break
        ran = sum(len(r.ran) for r in runner_of.values())
        note = (f"This invocation: {ran} runs executed, {(time.time() - started) / 60:.1f} min; code commit "
                f"{runner_of[id(report_plan)].commit}.")
    rec = {w: load_records(records_root / f"w{w}") for w in (cw, rw)}
    block_records = {name: with_plan_versions(load_records(records_root / block_dir(rw, name)))
                     for name in plan["report"].get("blocks") or {}}
    build_report(plan, rec, with_plan_versions(load_records(table5_records)), ROOT / args.out, note,
                 plan_version(table5), block_records)


if __name__ == "__main__":
    main()
