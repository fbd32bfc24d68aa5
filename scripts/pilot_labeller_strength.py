"""Pilot, on the SYNTHETIC testbed: does a stronger SEAL labeller raise what pseudo-label selection could keep?

`results/labeller_ceiling.md` shows that no selection rule can reach issue #15's label-quality goal from the
testbed's 4-epoch SEAL labeller. This pilot asks whether plain source training moves that ceiling: it pretrains
the SEAL model with the plan's schedules (`configs/experiments/pilot_labeller_strength.yaml`: question, rows,
seeds and reading fixed before the runs), scores the target pool once per pretrain with the paper rule's adapt
config, and records the round-1 ceilings of `scripts/analyse_labeller_ceiling.py` beside the paper rule's own
round 1, offline. Choose world only (world 1): a pilot decides a direction and never looks at the report world.

Records: results/runs/pilot_labeller_strength/w<world>/ (one per pretrain and one per scoring pass).

    python scripts/pilot_labeller_strength.py --shard 0/2 &   # and 1/2 beside it: a seed each
    python scripts/pilot_labeller_strength.py --report-only   # results/pilot_labeller_strength.md from records
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import yaml
from analyse_labeller_ceiling import ceilings, stage_config  # the sibling scripts
from reproduce_selection_rules import TABLE5_PLAN, upstream_seeds, world_runner
from reproduce_table5 import Plan, pretrain_extract

from seal_transfer.data.domains import hidden_truth, source_labelmap
from seal_transfer.experiment import (
    Job,
    Runner,
    config_hash,
    load_records,
    matching_record,
    parse_shard,
    provenance_lines,
    record_path,
    weights_digest,
    write_record,
)
from seal_transfer.pseudo.labeler import selection_stats
from seal_transfer.pseudo.rounds import round_selection, score_target_pools
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
VERSION = 1  # of what a scoring record holds: bump when a metric's definition changes
PLAN_KEYS = ("experiment", "question", "config", "preset", "world_seed", "seeds", "rows", "min_class_gain", "reading")


def pretrain_job(plan: dict[str, Any], run_root: Path, row: str, seed: int) -> Job:
    return Job(name=f"pretrain_{row}__s{seed}", stage="pretrain", args=[f"seed={seed}", *plan["rows"][row]],
               run_dir=run_root / f"s{seed}" / f"pretrain_{row}",
               fields={"kind": "pretrain_seal", "row": row, "seed": seed, "world": plan["world_seed"]},
               extract=pretrain_extract)


def paper_adapt_job(table5: Plan, pretrain: Job, row: str, seed: int) -> Job:
    """The paper rule's adapt on this pretrain: its config says how part 1 scores the target pool (never run
    there); part 2 runs it."""
    template = table5.adapt("rule", 0.3, seed)
    return Job(name=f"adapt_rule_{row}__s{seed}", stage="adapt", args=list(template.args),
               run_dir=pretrain.run_dir.parent / f"adapt_rule_{row}", upstream=[pretrain],
               fields={"kind": "adapt", "row": row, "seed": seed}, extract=template.extract)


def transfer_job(plan: dict[str, Any], table5: Plan, pretrain: Job, adapt: Job, row: str, target_row: str,
                 seed: int) -> Job:
    """Part 2: Table 5's finetune of `target_row` (seal: from the pretrain; seal_adapt: from the paper rule's
    adapt), on this pilot pretrain."""
    fraction = plan["transfer"]["fraction"]
    template = table5.finetune(target_row, fraction, seed)
    return Job(name=f"finetune_{target_row}_{row}__f{fraction:g}__s{seed}", stage="finetune",
               args=list(template.args), run_dir=pretrain.run_dir.parent / f"ft_{target_row}_{row}_f{fraction:g}",
               upstream=[pretrain if target_row == "seal" else adapt],
               fields={"kind": "finetune", "row": row, "target_row": target_row, "fraction": fraction,
                       "seed": seed}, extract=template.extract)


def score(runner: Runner, adapt: Job) -> dict[str, Any]:
    """One scoring pass with the pretrain's weights: the round-1 ceilings and the paper rule's round 1."""
    cfg = stage_config(runner, adapt)
    pools = score_target_pools(cfg, adapt.upstream[0].weights, 1)
    if len(pools) != 1 or pools[0].truths is None:
        raise SystemExit("this pilot needs one target pool with hidden truth (the synthetic world's train pool)")
    pool = pools[0]
    labelmap = source_labelmap(cfg)
    sel, _ = round_selection(cfg, pool.scores, 1, None, pool.truths, labelmap)
    stats = selection_stats(pool.split, pool.scores, sel, labelmap, hidden_truth(cfg, pool.name), pool.truths)
    keep = ("kept_fraction", "pseudo_label_precision", "kept_truth_class_coverage", "kept_classes",
            "largest_class_share")
    return {"pool": pool.name, "paper_round1": {k: stats.get(k) for k in keep},
            "ceilings": ceilings(pool.scores.view1, pool.scores.view2, pool.truths, np.asarray(labelmap.ids))}


def run(plan: dict[str, Any], runner: Runner, table5: Plan, run_root: Path, records_dir: Path,
        shard: Optional[tuple[int, int]]) -> None:
    """This shard's seeds (dealt by position): part 1, each pretrain (rows in plan order) and its scoring pass;
    then part 2, the finetunes on those pretrains."""
    pairs = []  # (row, seed, pretrain, the paper rule's adapt on it)
    for seed in upstream_seeds(plan["seeds"], shard):
        for row in plan["rows"]:
            pre = pretrain_job(plan, run_root, row, seed)
            pairs.append((row, seed, pre, paper_adapt_job(table5, pre, row, seed)))
    for row, seed, pre, adapt in pairs:
        path = record_path(records_dir, f"scores_{row}__s{seed}")
        want = config_hash(plan["experiment"], VERSION, runner.job_hash(adapt))
        previous = matching_record(path, want)
        if previous is not None and (not pre.weights.exists()
                                     or previous.get("weights_sha256") == weights_digest(pre.weights)):
            continue  # scored for these weights (or the weights are gone: the record stands for them)
        if runner.ensure(pre, need_weights=True) is None:
            print("time budget reached; the next invocation continues from the records")
            return
        started = time.time()
        print(f"[pilot] {row} s{seed}: scoring the target pool with {pre.weights}", flush=True)
        result = score(runner, adapt)
        write_record(path, experiment=plan["experiment"], name=f"scores_{row}__s{seed}", config_hash=want,
                     commit=runner.commit, wall_time_s=time.time() - started,
                     fields={"kind": "scores", "row": row, "seed": seed, "world": plan["world_seed"],
                             "weights_sha256": weights_digest(pre.weights), **result})
    for row, seed, pre, adapt in pairs:
        for target_row in (plan.get("transfer") or {}).get("rows", []):
            if runner.ensure(transfer_job(plan, table5, pre, adapt, row, target_row, seed)) is None:
                print("time budget reached; the next invocation continues from the records")
                return


def correct_classes(scores: dict[str, Any]) -> int:
    """How many truth classes the argmax names correctly somewhere (its correct-class coverage, as a count)."""
    c = scores["ceilings"]
    return round(c["argmax_true_only"]["correct_coverage"] * c["truth_classes"])


def _f(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def report(plan: dict[str, Any], records: list[dict[str, Any]], out: Path, note: str) -> None:
    """Per seed and row: source mAP, the paper rule's round 1 and the ceilings; then the plan's reading, applied."""
    by = {(r.get("kind"), r.get("row"), r.get("seed")): r for r in records}
    rows, seeds = list(plan["rows"]), list(plan["seeds"])
    lines = ["# Pilot: does a stronger SEAL labeller raise the selection ceiling? (SYNTHETIC)", "",
             f"**Synthetic results** (world `{plan['preset']}` seed {plan['world_seed']}, the choose world; a pilot "
             "of two seeds, read per seed).", "",
             f"**Question (fixed before the runs).** {plan['question']}", "",
             f"**Reading (fixed before the runs; restated once in classes before any pretrain was scored, see the "
             f"plan).** {plan['reading']}", "",
             "Plan: `configs/experiments/pilot_labeller_strength.yaml`. Metrics on the target train pool's hidden "
             "truth, from one two-view scoring pass per pretrain; definitions as in "
             "`results/labeller_ceiling.md`.", "",
             "| seed | row | source mAP % | paper rule r1: kept | precision | truth-class coverage | argmax: "
             "precision | argmax: correct-class coverage | class top-1: precision | class top-1: correct coverage |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    gains: dict[int, Optional[int]] = {}
    for seed in seeds:
        for row in rows:
            pre, sc = by.get(("pretrain_seal", row, seed)), by.get(("scores", row, seed))
            if sc is None:
                lines.append(f"| s{seed} | {row} | {_f(100 * pre['mAP']) if pre else '—'} | (not scored yet) "
                             "| | | | | | |")
                continue
            p, c = sc["paper_round1"], sc["ceilings"]
            lines.append(f"| s{seed} | {row} | {_f(100 * pre['mAP']) if pre else '—'} | {_f(p['kept_fraction'])} | "
                         f"{_f(p['pseudo_label_precision'])} | {_f(p['kept_truth_class_coverage'])} | "
                         f"{_f(c['argmax_all']['precision'])} | {_f(c['argmax_true_only']['correct_coverage'])} | "
                         f"{_f(c['class_top1']['precision'])} | {_f(c['class_top1']['correct_coverage'])} |")
        first, last = (by.get(("scores", r, seed)) for r in (rows[0], rows[-1]))
        gains[seed] = correct_classes(last) - correct_classes(first) if first and last else None
    lines += ["", f"Truth classes the argmax names correctly, {rows[-1]} − {rows[0]}: "
              + "; ".join(f"s{s} {'not yet' if g is None else f'{g:+d}'}" for s, g in gains.items()) + ".", ""]
    if any(g is None for g in gains.values()):
        lines.append("**Verdict:** not yet — some pretrains are not scored.")
    elif all(g >= plan["min_class_gain"] for g in gains.values()):
        lines.append("**Verdict:** met in both seeds — a stronger source model raises the ceiling; a "
                     "stronger-labeller issue is worth filing.")
    else:
        lines.append(f"**Verdict:** not met: the plan asks for at least +{plan['min_class_gain']} classes in every "
                     "seed. By the plan's reading, the ceiling is then not mainly a matter of source training; the "
                     "measures below, outside that reading, show what else moved.")
    lines += beside_the_criterion(by, rows, seeds)
    lines += transfer_section(plan, records)
    lines += ["", *provenance_lines(records, note)]
    with atomic_write(out) as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


def beside_the_criterion(by: dict[tuple[Any, Any, Any], dict[str, Any]], rows: list[str], seeds: list[int]
                         ) -> list[str]:
    """The other measures' change per seed, shown apart from the verdict: the plan's reading rests on one measure,
    and a reader should see whether the others agree with it (they are not part of the reading)."""
    measures = [("source mAP (points)", lambda pre, sc: 100 * pre["mAP"] if pre else None),
                ("paper rule r1 truth-class coverage", lambda pre, sc: sc["paper_round1"]["kept_truth_class_coverage"]),
                ("paper rule r1 precision", lambda pre, sc: sc["paper_round1"]["pseudo_label_precision"]),
                ("class top-1 precision", lambda pre, sc: sc["ceilings"]["class_top1"]["precision"])]
    out = []
    for label, get in measures:
        cells = []
        for seed in seeds:
            ends = [(by.get(("pretrain_seal", r, seed)), by.get(("scores", r, seed))) for r in (rows[0], rows[-1])]
            if any(sc is None for _, sc in ends):
                continue
            a, b = (get(pre, sc) for pre, sc in ends)
            if a is not None and b is not None:
                cells.append(f"s{seed} {a:.2f} → {b:.2f}")
        if cells:
            out.append(f"- {label}: " + "; ".join(cells))
    if not out:
        return []
    return ["", f"Beside the criterion (not part of the plan's reading), {rows[0]} → {rows[-1]}:", "", *out]


def transfer_section(plan: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """Part 2: per seed and pretrain schedule, no adaptation vs the paper rule (target frame-mAP %), paired."""
    spec = plan.get("transfer")
    if not spec:
        return []
    fraction = spec["fraction"]
    mAP = {(r["row"], r["target_row"], r["seed"]): 100 * r["mAP"] for r in records
           if r.get("kind") == "finetune" and r.get("fraction") == fraction}
    lines = ["", f"## Part 2: what adaptation is worth on each labeller (fraction {fraction:g})", "",
             "Added after part 1 was read, fixed before its runs; descriptive (two seeds, no interval). Target "
             "frame-mAP %; Table 5's rows with its stage arguments, on the pilot's pretrains.", "",
             "| seed | pretrain | no adaptation (seal) | paper rule (seal_adapt) | paper rule − no adaptation |",
             "|---|---|---|---|---|"]
    for seed in plan["seeds"]:
        for row in plan["rows"]:
            none, paper = mAP.get((row, "seal", seed)), mAP.get((row, "seal_adapt", seed))
            diff = f"{paper - none:+.2f}" if none is not None and paper is not None else "—"
            lines.append(f"| s{seed} | {row} | {_f(none)} | {_f(paper)} | {diff} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="configs/experiments/pilot_labeller_strength.yaml")
    ap.add_argument("--run-root", default="runs/pilot_labeller_strength", help="run directories (not committed)")
    ap.add_argument("--records", default="results/runs/pilot_labeller_strength", help="committed run records")
    ap.add_argument("--out", default="results/pilot_labeller_strength.md")
    ap.add_argument("--shard", default=None, metavar="I/N", help="only this shard's seeds (dealt by position)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    plan = yaml.safe_load((ROOT / args.plan).read_text())
    missing = [k for k in PLAN_KEYS if k not in (plan or {})]
    if missing:
        raise SystemExit(f"{args.plan}: missing key(s) {', '.join(missing)}")
    world = int(plan["world_seed"])
    folder = f"w{world}"
    records_dir, run_root = ROOT / args.records / folder, ROOT / args.run_root / folder
    started = time.time()
    note = "report rebuilt from records only (--report-only)."
    if not args.report_only:
        runner = world_runner(plan, world, records_dir, run_root)
        table5 = Plan(yaml.safe_load((ROOT / TABLE5_PLAN).read_text()), run_root)
        run(plan, runner, table5, run_root, records_dir, parse_shard(args.shard))
        note = (f"This invocation: {len(runner.ran)} runs executed, {(time.time() - started) / 60:.1f} min; code "
                f"commit {runner.commit}.")
    report(plan, load_records(records_dir), ROOT / args.out, note)


if __name__ == "__main__":
    main()
