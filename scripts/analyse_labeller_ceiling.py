"""What any selection rule could keep from a labeller, on the SYNTHETIC testbed (needs the world's hidden truth).

A selection rule only chooses among the labeller's scores. So its first round is a function of one scoring pass:
the SEAL pretrain's two-view scores of every target pool box. This script makes that pass once per pretrain of a
selection-rule block (`configs/experiments/selection_rules.yaml`) and does two things with it.

  check     It reapplies every planned setting's round-1 rule offline (`seal_transfer.pseudo.rules`). It compares
            the kept fraction, precision and class coverage with what the block's adapt runs recorded. They must
            be equal: the offline path and the stage are one code path.
  ceilings  It sets the issue's goal beside what selection could reach at all. The goal is a last round that
            keeps >= 80 % of the truth's classes, at a precision of at least twice the majority class's
            frequency. The ceilings:
              - the argmax labels kept only where true (any argmax rule's best coverage at precision 1);
              - per class, its top-k boxes among those predicted as that class (a fixed-count CBST);
              - per class, its top-k boxes by that class's own score, whatever the argmax (retrieval).

Records: results/runs/labeller_ceiling/w<world>_<block>/ceiling__s<seed>.json (one per pretrain, with the
weights' digest). A pretrain whose record matches is not rescored, and the report is built from the records.

    python scripts/analyse_labeller_ceiling.py                 # score what lacks a record, write the report
    python scripts/analyse_labeller_ceiling.py --report-only   # results/labeller_ceiling.md from the records
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml
from reproduce_selection_rules import (  # the sibling scripts
    TABLE5_PLAN,
    RulePlan,
    block_dir,
    setting_name,
    world_runner,
)

from seal_transfer.config.loader import load_config
from seal_transfer.config.schema import Config
from seal_transfer.data.domains import hidden_truth, source_labelmap
from seal_transfer.experiment import (
    Job,
    Runner,
    config_hash,
    load_records,
    matching_record,
    mean_std,
    record_path,
    weights_digest,
    write_record,
)
from seal_transfer.pseudo.labeler import selection_stats
from seal_transfer.pseudo.rounds import round_selection, score_target_pools
from seal_transfer.report.plots import save_figure
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "labeller_ceiling"
TOP_K = (1, 2, 5, 10, 25)
CHECKED = ("kept_fraction", "pseudo_label_precision", "kept_truth_class_coverage", "kept_classes")
VERSION = 2  # of what a record holds: bump when a metric's definition changes, so records are remade


def settings(plan: dict[str, Any], block: RulePlan, block_spec: dict[str, Any], seed: int) -> list[tuple[str, Job]]:
    """Every adapt of the block for one seed, named as the report names it: the paper rule, each rule value and
    the controls (whose round-1 labels are the random draw of their rule's)."""
    out = [("paper rule", block.table5.adapt("rule", 0.3, seed))]
    out += [(setting_name(rule, v), block.adapt(rule, v, seed))
            for rule, spec in plan["rules"].items() for v in spec["values"]]
    out += [(c, block.adapt(c, None, seed)) for c in block_spec.get("controls") or []]
    return out


def stage_config(runner: Runner, job: Job) -> Any:
    """The typed config the adapt stage loaded for `job` (the experiment runner's files and arguments)."""
    return load_config(Config, [ROOT / c for c in runner.configs], [f"run_dir={job.run_dir}", *runner.common,
                                                                   *job.args])


def _score(labels: list[tuple[int, int]], truths: list[set[int]], present: set[int], ids: np.ndarray
           ) -> dict[str, Any]:
    """Precision, class coverage and correct-class coverage of a set of (box, class column) labels."""
    hits = [int(ids[c]) in truths[b] for b, c in labels]
    kept = {int(ids[c]) for _, c in labels}
    correct = {int(ids[c]) for (b, c), h in zip(labels, hits) if h}
    return {"labels": len(labels), "precision": float(np.mean(hits)) if labels else None,
            "coverage": len(kept & present) / len(present), "correct_coverage": len(correct & present) / len(present)}


def _present(truths: list[set[int]], ids: np.ndarray) -> set[int]:
    """The label map's classes that some box truly does."""
    return {c for t in truths for c in t} & {int(i) for i in ids}


def ceilings(view1: np.ndarray, view2: np.ndarray, truths: list[set[int]], ids: np.ndarray) -> dict[str, Any]:
    """The three families of the module docstring, on the two views' mean score."""
    s = (view1 + view2) / 2
    counts: dict[int, int] = {}
    for t in truths:
        for c in t:
            counts[c] = counts.get(c, 0) + 1
    present = _present(truths, ids)
    with_truth = sum(bool(t) for t in truths)
    out: dict[str, Any] = {"boxes": len(truths), "boxes_with_truth": with_truth, "truth_classes": len(present),
                           "majority_class_frequency": max(counts.values()) / with_truth if with_truth else None}
    argmax = s.argmax(1)
    out["argmax_all"] = _score(list(enumerate(argmax)), truths, present, ids)
    out["argmax_true_only"] = _score([(b, c) for b, c in enumerate(argmax) if int(ids[c]) in truths[b]], truths,
                                     present, ids)
    for k in TOP_K:
        per_argmax, per_score = [], []
        for c in range(s.shape[1]):
            mine = np.flatnonzero(argmax == c)
            per_argmax += [(int(b), c) for b in mine[np.argsort(-s[mine, c], kind="stable")[:k]]]
            per_score += [(int(b), c) for b in np.argsort(-s[:, c], kind="stable")[:k]]
        out[f"argmax_top{k}"] = _score(per_argmax, truths, present, ids)
        out[f"class_top{k}"] = _score(per_score, truths, present, ids)
    return out


def analyse_seed(runner: Runner, jobs: list[tuple[str, Job]]) -> dict[str, Any]:
    """One pretrain: one scoring pass, every setting's round 1 offline beside its recorded round 1, the ceilings."""
    first = stage_config(runner, jobs[0][1])
    pools = score_target_pools(first, jobs[0][1].upstream[0].weights, 1)
    if len(pools) != 1 or pools[0].truths is None:
        raise SystemExit("this analysis needs one target pool with hidden truth (the synthetic world's train pool)")
    pool = pools[0]
    labelmap = source_labelmap(first)
    ids = np.asarray(labelmap.ids)
    offline: dict[str, Any] = {}
    for label, job in jobs:
        cfg = stage_config(runner, job)
        sel, _ = round_selection(cfg, pool.scores, 1, None, pool.truths, labelmap)
        stats = selection_stats(pool.split, pool.scores, sel, labelmap, hidden_truth(cfg, pool.name), pool.truths)
        named = [(int(b), int(c)) for b, c in zip(*np.nonzero(sel.labels.numpy()))]
        offline[label] = {"run": job.name, "run_hash": runner.job_hash(job),
                          "offline": {k: stats.get(k) for k in CHECKED},
                          "labels": _score(named, pool.truths, _present(pool.truths, ids), ids)}
    return {"pool": pool.name, "offline": offline,
            "ceilings": ceilings(pool.scores.view1, pool.scores.view2, pool.truths, ids)}


def _ms(values: list[float]) -> str:
    return "{:.2f} ± {:.2f}".format(*mean_std(values)) if values else "—"


CEILING_NAMES = {"argmax_all": "every box, argmax class",
                 "argmax_true_only": "argmax class, kept only where true (uses the truth)",
                 **{f"argmax_top{k}": f"per class: top {k} of the boxes predicted as it" for k in TOP_K},
                 **{f"class_top{k}": f"per class: top {k} boxes by its own score" for k in TOP_K}}


def recorded_round1(entry: dict[str, Any], runs: dict[str, dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The round-1 statistics the block's adapt run recorded for this setting and seed (None: no matching record
    yet), read at report time so the check grows as the block's runs finish."""
    record = runs.get(entry["run"])
    if record is None or record.get("config_hash") != entry["run_hash"]:
        return None
    rounds = record.get("rounds") or [{}]
    return {k: rounds[0].get(k) for k in CHECKED}


def report(plan: dict[str, Any], records: list[dict[str, Any]], runs: dict[str, dict[str, Any]], out: Path,
           block: str) -> None:
    """results/labeller_ceiling.{md,png} from the records (`runs`: the block's adapt records, by name)."""
    world = plan["report"]["world_seed"]
    lines = ["# What a selection rule could keep: the labeller's ceiling (SYNTHETIC)", "",
             "**Synthetic results** (world `small`, the report world of the selection-rule experiment), from the "
             f"round-1 scores of block {block}'s SEAL pretrains: `python scripts/analyse_labeller_ceiling.py`.", "",
             "A rule's first round is a function of one scoring pass: the pretrain's two-view scores of every target "
             "pool box. Below, every planned setting's round-1 rule is reapplied to that pass offline and checked "
             "against the block's adapt runs. Then the issue's goal is set beside what any selection could reach.",
             ""]
    if not records:
        with atomic_write(out) as handle:
            handle.write("\n".join(lines + ["No records yet: run the script where the block's pretrains exist.", ""]))
        return
    lines += [f"Seeds: {', '.join(str(r['seed']) for r in records)} (world {world}); "
              f"{records[0]['ceilings']['boxes']} pool boxes per seed, "
              f"{records[0]['ceilings']['truth_classes']} source classes in the truth.", "",
              "## Check: offline round 1 equals the recorded round 1", "",
              "*Correct coverage* is the share of the truth's classes that some label names correctly; the issue's "
              "coverage counts a class however its labels are.", "",
              "| setting | runs compared | kept fraction | precision | coverage | correct coverage | "
              "largest \\|offline − recorded\\| |", "|---|---|---|---|---|---|---|"]
    worst_all, compared_all = 0.0, 0
    settings_seen: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        for label, entry in r["offline"].items():
            settings_seen.setdefault(label, []).append(entry)
    for label, rows in settings_seen.items():
        pairs = [(row["offline"], rec) for row in rows for rec in [recorded_round1(row, runs)] if rec]
        worst = max((abs(float(a[k]) - float(b[k])) for a, b in pairs for k in CHECKED
                     if a.get(k) is not None and b.get(k) is not None), default=None)
        if worst is not None:
            worst_all, compared_all = max(worst_all, worst), compared_all + len(pairs)
        col = {k: _ms([float(row["offline"][k]) for row in rows if row["offline"].get(k) is not None])
               for k in CHECKED}
        lines.append(f"| {label} | {len(pairs)} | {col['kept_fraction']} | {col['pseudo_label_precision']} | "
                     f"{col['kept_truth_class_coverage']} | {_ms([row['labels']['correct_coverage'] for row in rows])}"
                     f" | {'—' if worst is None else f'{worst:.2g}'} |")
    agree = compared_all > 0 and worst_all < 1e-9
    lines += ["", f"Over {compared_all} recorded runs the largest difference is {worst_all:.2g}: "
              + ("offline and recorded agree." if agree else
                 "they differ — the offline path is not the stage's, or the runs used other code or weights."
                 if compared_all else "nothing recorded to compare yet."), ""]
    ceil = [r["ceilings"] for r in records]
    target = [2 * c["majority_class_frequency"] for c in ceil]
    lines += ["## Ceilings: what selection could reach from these scores", "",
              "Goal (issue #15, for the last round): coverage ≥ 0.8 and precision ≥ 2 × the majority class's "
              f"frequency ({np.mean(target):.2f} here, mean over seeds). Means ± std over seeds.", "",
              "| selection | labels | precision | coverage | correct coverage | goal met |",
              "|---|---|---|---|---|---|"]
    for key, label in CEILING_NAMES.items():
        rows = [c[key] for c in ceil]
        met = sum(r["coverage"] >= 0.8 and r["precision"] is not None and r["precision"] >= t
                  for r, t in zip(rows, target))
        lines.append(f"| {label} | {np.mean([r['labels'] for r in rows]):.0f} | "
                     f"{_ms([r['precision'] for r in rows if r['precision'] is not None])} | "
                     f"{_ms([r['coverage'] for r in rows])} | {_ms([r['correct_coverage'] for r in rows])} | "
                     f"{met}/{len(rows)} seeds |")
    true_only = [c["argmax_true_only"]["correct_coverage"] for c in ceil]
    retrieval = [max(c[f"class_top{k}"]["correct_coverage"] for k in TOP_K) for c in ceil]
    best_named = max(settings_seen, key=lambda s: np.mean([row["labels"]["correct_coverage"]
                                                            for row in settings_seen[s]]))
    lines += ["", "## Reading", "",
              f"- **Any rule that labels a box with the labeller's argmax** (the paper rule, class_balanced, adaptive, "
              f"and the rules that change only training) names at most {np.mean(true_only):.2f} of the truth's "
              f"classes correctly (max {max(true_only):.2f} over seeds). That is the share of classes the round-1 "
              "labeller ever predicts correctly as its top class on any box, so no threshold, quota or agreement "
              "filter can raise it.",
              f"- **Ranking each class's boxes by that class's own score** names every class, but at precision "
              f"{_ms([c['class_top1']['precision'] for c in ceil])} for its single best box. Its correct coverage "
              f"reaches at most {np.mean(retrieval):.2f} (top {max(TOP_K)}), at a precision far below the goal's "
              f"{np.mean(target):.2f}.",
              f"- **Of the planned settings**, {best_named} names the most classes correctly in round 1: "
              f"{_ms([row['labels']['correct_coverage'] for row in settings_seen[best_named]])}"
              + (", above the argmax ceiling: a prior shift moves the argmax itself, at a cost in precision "
                 f"({_ms([row['labels']['precision'] for row in settings_seen[best_named]])})."
                 if np.mean([row["labels"]["correct_coverage"] for row in settings_seen[best_named]])
                 > np.mean(true_only) else "."),
              "- The issue's coverage counts a class however its labels are, so wrong labels can raise it; correct "
              "coverage is the reading that matters. " + goal_reading(settings_seen, ceil, target), "",
              "![labeller ceiling](labeller_ceiling.png)", "",
              *[f"- s{r['seed']}: pretrain weights {r['weights_sha256'][:12]}…, commit {r['commit'][:8]}, "
                f"{r['wall_time_s']:.0f} s" for r in records]]
    with atomic_write(out) as handle:
        handle.write("\n".join(lines) + "\n")
    draw(settings_seen, ceil, target, out.with_suffix(".png"))
    print(f"wrote {out}")


def goal_reading(settings_seen: dict[str, list[dict[str, Any]]], ceil: list[dict[str, Any]],
                 target: list[float]) -> str:
    """Whether any selection measured here reaches correct coverage 0.8 at the goal's precision (means over seeds)."""
    goal = float(np.mean(target))
    points = {CEILING_NAMES[k]: (np.mean([c[k]["correct_coverage"] for c in ceil]),
                                 np.mean([c[k]["precision"] or 0.0 for c in ceil])) for k in CEILING_NAMES}
    points.update({s: (np.mean([r["labels"]["correct_coverage"] for r in rows]),
                       np.mean([r["labels"]["precision"] or 0.0 for r in rows])) for s, rows in settings_seen.items()})
    precise = {name: cov for name, (cov, prec) in points.items() if prec >= goal}
    if not precise:
        return f"No selection measured here reaches the goal's precision ({goal:.2f})."
    name = max(precise, key=precise.get)
    if precise[name] >= 0.8:
        return (f"At the goal's precision ({goal:.2f}), '{name}' names {precise[name]:.2f} of the classes "
                "correctly: the goal is within a selection's reach.")
    return (f"At the goal's precision ({goal:.2f}) the most any selection measured here names correctly is "
            f"{precise[name]:.2f} ('{name}'). From these scores the goal is out of a selection rule's reach; it "
            "would take a better labeller, not a better rule.")


def draw(settings_seen: dict[str, list[dict[str, Any]]], ceil: list[dict[str, Any]], target: list[float],
         out_png: Path) -> None:
    """Precision against correct coverage: the planned settings' round 1 and the ceilings, beside the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.add_patch(plt.Rectangle((0.8, np.mean(target)), 0.2, 1.05 - np.mean(target), color="green", alpha=0.12))
    ax.annotate("goal", (0.82, np.mean(target) + 0.02), fontsize=8, color="green")
    same_point: dict[tuple[float, float], list[str]] = {}  # settings whose round 1 is one selection share a label
    for label, rows in settings_seen.items():
        x = np.mean([row["labels"]["correct_coverage"] for row in rows])
        y = np.mean([row["labels"]["precision"] for row in rows if row["labels"]["precision"] is not None])
        same_point.setdefault((round(float(x), 2), round(float(y), 2)), []).append(label)
    for (x, y), labels in same_point.items():
        labels.sort(key=lambda name: name != "paper rule")
        ax.scatter([x], [y], color="C0", s=25)
        ax.annotate(" = ".join(labels) if len(labels) < 3 else f"{labels[0]} (+{len(labels) - 1} with about the "
                    "same round 1)", (x, y), fontsize=6.5, xytext=(3, 2), textcoords="offset points")
    for family, color, name in (("argmax_top", "C1", "per class, top k of its argmax boxes"),
                                ("class_top", "C3", "per class, top k by its own score")):
        xs = [np.mean([c[f"{family}{k}"]["correct_coverage"] for c in ceil]) for k in TOP_K]
        ys = [np.mean([c[f"{family}{k}"]["precision"] for c in ceil]) for k in TOP_K]
        ax.plot(xs, ys, "o--", color=color, ms=4, label=f"{name} (k = {', '.join(map(str, TOP_K))})")
    x = np.mean([c["argmax_true_only"]["correct_coverage"] for c in ceil])
    ax.axvline(x, color="grey", ls=":", lw=1)
    ax.annotate("argmax rules' ceiling", (x, 0.02), fontsize=7, color="grey", rotation=90, xytext=(3, 0),
                textcoords="offset points")
    ax.set(xlabel="round 1: share of the truth's classes named correctly", ylabel="round 1: pseudo-label precision",
           xlim=(0, 1.02), ylim=(0, 1.05), title="SYNTHETIC: what selection could keep from the SEAL labeller")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="configs/experiments/selection_rules.yaml")
    ap.add_argument("--block", default="rebuild1", help="the selection-rule block whose pretrains and runs to read")
    ap.add_argument("--run-root", default="runs/selection_rules", help="the selection-rule run directories")
    ap.add_argument("--rules-records", default="results/runs/selection_rules", help="the block's adapt records")
    ap.add_argument("--records", default=f"results/runs/{EXPERIMENT}")
    ap.add_argument("--out", default=f"results/{EXPERIMENT}.md")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    plan = yaml.safe_load((ROOT / args.plan).read_text())
    table5 = yaml.safe_load((ROOT / TABLE5_PLAN).read_text())
    blocks = plan["report"].get("blocks") or {}
    if args.block not in blocks:
        raise SystemExit(f"{args.plan}: no block '{args.block}' under report.blocks (has: {', '.join(blocks)})")
    world = plan["report"]["world_seed"]
    folder = block_dir(world, args.block)
    records_dir = ROOT / args.records / folder
    run_root = ROOT / args.run_root / folder
    block = RulePlan(plan, table5, world, run_root, run_root, ROOT / args.rules_records / folder)
    runner = world_runner(plan, world, ROOT / args.rules_records / folder, run_root)
    if not args.report_only:
        missing = []
        for seed in plan["report"]["seeds"]:
            jobs = settings(plan, block, blocks[args.block], seed)
            weights = jobs[0][1].upstream[0].weights
            digest = weights_digest(weights)
            path = record_path(records_dir, f"ceiling__s{seed}")
            want = config_hash(EXPERIMENT, VERSION, TOP_K, [runner.job_hash(j) for _, j in jobs])
            previous = matching_record(path, want)
            if previous is not None and (digest is None or previous.get("weights_sha256") == digest):
                continue  # recorded for these weights (or the weights are gone: the record stands for them)
            if digest is None:
                missing.append(seed)
                continue
            started = time.time()
            print(f"[ceiling] seed {seed}: scoring the target pool with {weights}", flush=True)
            result = analyse_seed(runner, jobs)
            write_record(path, experiment=EXPERIMENT, name=f"ceiling__s{seed}", config_hash=want,
                         commit=runner.commit, wall_time_s=time.time() - started,
                         fields={"world": world, "block": args.block, "seed": seed, "weights_sha256": digest,
                                 **result})
        if missing:
            print(f"skipped seeds {missing}: their pretrain weights are not under {run_root} and they have no "
                  "record; build them with scripts/reproduce_selection_rules.py --upstream-only")
    runs = {r["name"]: r for r in load_records(ROOT / args.rules_records / folder)}
    report(plan, sorted(load_records(records_dir), key=lambda r: r["seed"]), runs, ROOT / args.out, args.block)


if __name__ == "__main__":
    main()
