"""SEAL Table 5 on the calibrated SYNTHETIC testbed, built from committed run records.

The plan (question, rows, seeds, label fractions, success criterion) is a YAML file fixed before the runs
(`configs/experiments/table5.yaml`); every stage runs as its CLI, and each finished stage leaves a record under
`results/runs/table5/` (metrics, per-round stats, config hash, commit, wall time). A rerun skips every run whose
record matches, so the table grows over several sessions; `--budget-min` stops starting new runs after that many
minutes, and `--report-only` rebuilds the report from the records without running anything.

Rows (each ends with `python -m seal_transfer.finetune` at `data.target.label_fraction`):
  generic      generic-clip classification pretrain (same epochs as the SEAL one)   (paper: Kinetics-700, 29.3)
  seal         SEAL-style pretrain (SEAL Clips detection)                          (paper: SEAL Clips, 30.4)
  seal_adapt   SEAL-style pretrain -> adapt (paper rule, lambda_c = 0.3)           (paper: Semi-Transfer, 30.8)
  seal_oracle  -> adapt with the hidden true source labels of every pool box (upper bound for any rule)
  seal_random  -> adapt with the rule's boxes and random classes of the rule's frequencies (lower bound)
  scratch      random initialisation (optional)

    python scripts/reproduce_table5.py                      # run what is missing, then write the report
    python scripts/reproduce_table5.py --budget-min 120     # start no new run after 2 hours
    python scripts/reproduce_table5.py --report-only
    python scripts/reproduce_table5.py --dry-run            # what would run, and what is reused
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import yaml

from seal_transfer.experiment import (
    Job,
    Runner,
    adapt_round_summary,
    by_seed,
    describe_interval,
    load_records,
    mean_std,
    paired_difference,
    planned_runs,
    provenance_lines,
    run_jobs,
    verdict_phrase,
)
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"generic": 29.3, "seal": 30.4, "seal_adapt": 30.8}
LABELS = {
    "scratch": "random init",
    "generic": "generic-clip pretrain (Kinetics stand-in)",
    "seal": "SEAL-style pretrain",
    "seal_adapt": "SEAL + adapt (paper rule, λ_c=0.3)",
    "seal_oracle": "SEAL + oracle adapt (true labels)",
    "seal_random": "SEAL + random adapt (random labels)",
}
ADAPT_ROWS = {"seal_adapt": "rule", "seal_oracle": "oracle", "seal_random": "random"}
PHASES = ("table", "sweep", "curve")  # the plan's parts, in the order they run


def _frac(f: float) -> str:
    return f"{f:g}"


def pretrain_extract(out_dir: Path) -> dict[str, Any]:
    import json

    m = json.loads((out_dir / "metrics.json").read_text())
    keep = ("mAP", "accuracy", "top50", "epochs", "train_keyframes", "train_clips", "wall_time_s",
            "train_samples_per_s")
    return {k: m[k] for k in keep if k in m}


def adapt_extract(out_dir: Path) -> dict[str, Any]:
    return {"rounds": adapt_round_summary(out_dir)}


def finetune_extract(out_dir: Path) -> dict[str, Any]:
    import json

    m = json.loads((out_dir / "metrics.json").read_text())
    return {k: m.get(k) for k in ("mAP", "label_fraction", "labelled_train_videos", "epochs")}


def plan_version(plan: dict[str, Any]) -> int:
    """The plan's current version (1 if it was never revised)."""
    return int(plan.get("version", 1))


def stage_args(plan: dict[str, Any], version: int) -> dict[str, list[str]]:
    """Per-stage arguments of one plan version: the current `stage_args`, or an earlier version's overrides of them
    (`earlier_versions: {N: {stage_args: {...}}}`)."""
    args = dict(plan.get("stage_args", {}))
    if version != plan_version(plan):
        earlier = (plan.get("earlier_versions") or {}).get(version)
        if earlier is None:
            raise SystemExit(f"plan has no version {version} (current: {plan_version(plan)})")
        args.update(earlier.get("stage_args", {}))
    return args


def with_plan_versions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of adapt runs (and of finetunes built on them) made before the plan was versioned are version 1:
    their commands show the version-1 arguments."""
    for r in records:
        if r.get("kind") == "adapt" or (r.get("kind") == "finetune" and r.get("row") in ADAPT_ROWS):
            r.setdefault("plan_version", 1)
    return records


def row_match(row: str, version: int, lambda_c: float = 0.3) -> dict[str, Any]:
    """The record fields that select one row's finetunes of one plan version."""
    return {"row": row, "lambda_c": lambda_c, "plan_version": version} if row in ADAPT_ROWS else {"row": row,
                                                                                                 "lambda_c": None}


class Plan:
    """The jobs of the experiment, named so that their records can be found again."""

    def __init__(self, plan: dict[str, Any], run_root: Path, version: Optional[int] = None) -> None:
        self.plan = plan
        self.run_root = run_root
        self.version = plan_version(plan) if version is None else version
        self.stage_args = stage_args(plan, self.version)
        # Adapt rows of a later plan version get their own names, run dirs and records, so the earlier version's
        # records stay valid and reportable beside them (the pretrain and SEAL/generic rows are shared).
        self.suffix = "" if self.version == 1 else f"_v{self.version}"
        self._jobs: dict[str, Job] = {}

    @property
    def adapt_args(self) -> list[str]:
        return list(self.stage_args.get("adapt", []))

    def _job(self, name: str, **kw: Any) -> Job:
        if name not in self._jobs:
            self._jobs[name] = Job(name=name, **kw)
        return self._jobs[name]

    def pretrain(self, kind: str, seed: int) -> Job:
        extra = self.stage_args
        args = [f"seed={seed}"] + (["task=classification", *extra.get("generic", [])] if kind == "generic" else [])
        return self._job(f"pretrain_{kind}__s{seed}", stage="pretrain", args=args,
                         run_dir=self.run_root / f"s{seed}" / f"pretrain_{kind}",
                         fields={"kind": f"pretrain_{kind}", "seed": seed}, extract=pretrain_extract)

    def adapt(self, labels: str, lambda_c: float, seed: int) -> Job:
        tag = f"adapt_{labels}_l{lambda_c:g}{self.suffix}"
        return self._job(f"{tag}__s{seed}", stage="adapt",
                         args=[f"seed={seed}", f"adapt.labels={labels}", f"adapt.lambda_c={lambda_c}",
                               *self.adapt_args],
                         run_dir=self.run_root / f"s{seed}" / tag, upstream=[self.pretrain("seal", seed)],
                         fields={"kind": "adapt", "labels": labels, "lambda_c": lambda_c, "seed": seed,
                                 "plan_version": self.version},
                         extract=adapt_extract)

    def init_of(self, row: str, seed: int, lambda_c: float = 0.3) -> list[Job]:
        if row == "scratch":
            return []
        if row == "generic":
            return [self.pretrain("generic", seed)]
        if row == "seal":
            return [self.pretrain("seal", seed)]
        return [self.adapt(ADAPT_ROWS[row], lambda_c, seed)]

    def finetune(self, row: str, fraction: float, seed: int, lambda_c: float = 0.3) -> Job:
        suffix = "" if row not in ADAPT_ROWS else ("" if lambda_c == 0.3 else f"_l{lambda_c:g}") + self.suffix
        name = f"finetune_{row}{suffix}__f{_frac(fraction)}__s{seed}"
        adapt_fields = {"plan_version": self.version} if row in ADAPT_ROWS else {}
        return self._job(name, stage="finetune",
                         args=[f"seed={seed}", f"data.target.label_fraction={fraction}",
                               *self.stage_args.get("finetune", [])],
                         run_dir=self.run_root / f"s{seed}" / f"ft_{row}{suffix}_f{_frac(fraction)}",
                         upstream=self.init_of(row, seed, lambda_c),
                         fields={"kind": "finetune", "row": row, "fraction": fraction, "seed": seed,
                                 "lambda_c": lambda_c if row in ADAPT_ROWS else None, **adapt_fields},
                         extract=finetune_extract)

    def ordered(self, phases: Sequence[str] = PHASES) -> list[Job]:
        """Fraction by fraction in the plan's order (the scarce-label one first: where transfer matters most, and
        4x cheaper to finetune), seed by seed within it (so paired comparisons grow); the sweep, then the curve.
        `phases`: which of those three parts (`table`, `sweep`, `curve`) to include."""
        jobs: list[Job] = []
        sweep = self.plan.get("lambda_sweep") or {}
        if "table" in phases:
            for fraction in self.plan["fractions"]:
                for seed in self.plan["seeds"]:
                    jobs += [self.finetune(row, fraction, seed) for row in self.plan["rows"]]
        if "sweep" in phases:
            for seed in self.plan["seeds"]:
                for lam in sweep.get("values", []):
                    jobs.append(self.finetune("seal_adapt", float(sweep["fraction"]), seed, float(lam)))
        if "curve" in phases:
            for seed in self.plan["seeds"]:
                for fraction in self.plan.get("curve_fractions", []):
                    jobs += [self.finetune(row, fraction, seed) for row in self.plan["rows"]]
        return jobs


def build_report(plan: dict[str, Any], records: list[dict[str, Any]], out: Path, runner_note: str) -> None:
    rows, fractions, ref = plan["rows"], plan["fractions"], plan["reference"]
    ft = [r for r in records if r.get("kind") == "finetune"]
    lines = [
        f"# SEAL Table 5 on the calibrated SYNTHETIC testbed (world `{plan['preset']}`, seed {plan['world_seed']})",
        "",
        "**Synthetic results.** These numbers come from the built-in synthetic action world, not from SEAL or AVA. "
        "They test the paper's *ordering* on a controlled transfer testbed, not its absolute values.",
        "",
        f"**Question (fixed before the runs).** {plan['question']}",
        "",
        f"**Success criterion.** {plan['success']}",
        "",
        f"Plan: `configs/experiments/table5.yaml`; stage config `{plan['config']}`; training seeds "
        f"{plan['seeds']} (paired across rows); every number below is read from `results/runs/table5/*.json`.",
        "",
    ]
    source = by_seed(records, "mAP", kind="pretrain_seal")
    if source:
        m, s = mean_std([100 * v for v in source.values()])
        lines += [f"SEAL-style pretrain, source-val frame-mAP: {m:.1f} ± {s:.1f} % over {len(source)} seeds.", ""]
    version = plan_version(plan)
    if version > 1:
        lines += [f"**Plan version {version}.** {plan.get('revision', '')}".rstrip(), "",
                  "The adapt rows below are version " f"{version}'s; each earlier version's adapt rows, fixed and run "
                  "before the revision, are reported in their own section further down (same SEAL and generic rows).",
                  ""]
    for fraction in fractions:
        lines += [f"## Target label fraction {fraction:g}", "", *fraction_table(plan, ft, fraction, version, rows)]
    for old in sorted((plan.get("earlier_versions") or {}), reverse=True):
        old_rows = [ref, *[r for r in rows if r in ADAPT_ROWS]]
        lines += [f"## Plan version {old} (superseded): adapt rows with "
                  f"`{' '.join(stage_args(plan, old).get('adapt', []))}`", "",
                  plan["earlier_versions"][old].get("note", ""), ""]
        for fraction in fractions:
            lines += [f"### Target label fraction {fraction:g} (version {old})", "",
                      *fraction_table(plan, ft, fraction, old, old_rows)]
    sweep = plan.get("lambda_sweep") or {}
    if sweep:
        lines += sweep_lines(records, sweep, plan["seeds"], version)
    adapts = [r for r in records if r.get("kind") == "adapt"]
    if adapts:
        lines += rounds_lines(adapts)
    lines += provenance_lines(records, runner_note)
    with atomic_write(out) as handle:
        handle.write("\n".join(lines))
    print(f"wrote {out}")


def fraction_table(plan: dict[str, Any], ft: list[dict[str, Any]], fraction: float, version: int,
                   rows: list[str]) -> list[str]:
    """One label fraction's table (the rows' adapt runs from one plan version) and the success criterion's answer."""
    ref = plan["reference"]
    vals = {row: {k: 100 * v for k, v in by_seed(ft, "mAP", fraction=fraction, **row_match(row, version)).items()}
            for row in rows}
    lines = [f"| row | frame-mAP@0.5 (%) mean ± std | seeds | paired Δ vs {ref} [95% CI] | per seed | paper |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        v = vals[row]
        if not v:
            lines.append(f"| {LABELS[row]} | (not run yet) | 0 | — | — | {PAPER.get(row, '—')} |")
            continue
        m, s = mean_std(list(v.values()))
        diff = "—" if row == ref else describe_interval(paired_difference(v, vals[ref]))
        per = ", ".join(f"{k}: {x:.2f}" for k, x in sorted(v.items()))
        lines.append(f"| {LABELS[row]} | {m:.2f} ± {s:.2f} | {len(v)} | {diff} | {per} | {PAPER.get(row, '—')} |")
    return lines + ["", *answer_lines(vals, ref), ""]


def label_fraction_report(plan: dict[str, Any], records: list[dict[str, Any]], out_md: Path) -> None:
    """Frame-mAP against the target label fraction for every row (mean ± std over seeds), table and figure."""
    fractions = sorted({*plan["fractions"], *plan.get("curve_fractions", [])})
    ft = [r for r in records if r.get("kind") == "finetune"]
    lines = ["# Target frame-mAP against the labelled fraction of target train videos (SYNTHETIC)", "",
             "From the Table 5 records (`results/runs/table5/`); `data.target.label_fraction` keeps a seeded, nested "
             "subset of whole train videos. Mean ± std over the training seeds that have finished.", "",
             "| row | " + " | ".join(f"{f:g}" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for row in plan["rows"]:
        cells = []
        for f in fractions:
            v = [100 * x for x in by_seed(ft, "mAP", fraction=f, **row_match(row, plan_version(plan))).values()]
            if v:
                m, s = mean_std(v)
                curves.setdefault(row, []).append((f, m, s))
                cells.append(f"{m:.2f} ± {s:.2f} (n={len(v)})")
            else:
                cells.append("—")
        lines.append(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
    lines += ["", "![label fraction](label_fraction.png)", ""]
    with atomic_write(out_md) as handle:
        handle.write("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seal_transfer.report.plots import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (row, pts) in enumerate(curves.items()):
        nudge = 1.04 ** (i - (len(curves) - 1) / 2)  # rows side by side at each fraction (log axis), not on top
        ax.errorbar([p[0] * nudge for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                    capsize=3, label=LABELS[row])
    ax.set(xscale="log", xlabel="labelled fraction of target train videos", ylabel="target frame-mAP@0.5 (%)",
           title="SYNTHETIC: target mAP against the labelling budget (mean ± std)")
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.tight_layout()
    save_figure(fig, out_md.with_suffix(".png"))
    plt.close(fig)


def answer_lines(vals: dict[str, dict[int, float]], ref: str) -> list[str]:
    """The plan's success criterion, evaluated on what has been run so far (said plainly when seeds are few)."""
    out = []
    means = {row: mean_std(list(v.values()))[0] for row, v in vals.items() if v}
    if all(r in means for r in ("generic", "seal", "seal_adapt")):
        ordered = means["generic"] < means["seal"] < means["seal_adapt"]
        d = paired_difference(vals["seal_adapt"], vals["seal"])
        out.append(f"- **Paper ordering (generic < SEAL < SEAL + adapt):** means {'are' if ordered else 'are not'} "
                   f"ordered so; SEAL + adapt − SEAL: {verdict_phrase(d)} ({describe_interval(d)}).")
    if "seal_oracle" in means and ref in means:
        d = paired_difference(vals["seal_oracle"], vals[ref])
        out.append(f"- **Headroom (oracle − SEAL):** {verdict_phrase(d)} ({describe_interval(d)}).")
    if "seal_adapt" in means and "seal_random" in means:
        d = paired_difference(vals["seal_adapt"], vals["seal_random"])
        out.append(f"- **Rule vs random labels (SEAL + adapt − random):** {verdict_phrase(d)} "
                   f"({describe_interval(d)}).")
    if "generic" in means and ref in means:
        d = paired_difference(vals[ref], vals["generic"])
        out.append(f"- **SEAL − generic:** {verdict_phrase(d)} ({describe_interval(d)}).")
    return out or ["- Too few rows finished to answer yet."]


def sweep_lines(records: list[dict[str, Any]], sweep: dict[str, Any], seeds: list[int], version: int) -> list[str]:
    fraction = float(sweep["fraction"])
    ft = [r for r in records if r.get("kind") == "finetune" and r.get("row") == "seal_adapt"
          and r.get("fraction") == fraction and r.get("plan_version") == version]
    ref = {k: 100 * v for k, v in by_seed(records, "mAP", kind="finetune", row="seal", fraction=fraction).items()}
    paper_lambda = float(sweep.get("paper_value", 0.3))
    lines = [f"## λ_c sweep at label fraction {fraction:g} (paper rule, plan version {version})", "",
             *([f"**Question.** {sweep['question']}", ""] if sweep.get("question") else []),
             f"| λ_c | frame-mAP (%) mean ± std | seeds | paired Δ vs SEAL [95% CI] | paired Δ vs λ_c {paper_lambda:g} "
             "[95% CI] | last-round kept | precision | classes kept | largest share |",
             "|---|---|---|---|---|---|---|---|---|"]
    adapts = {(r["lambda_c"], r["seed"]): r for r in records
              if r.get("kind") == "adapt" and r.get("labels") == "rule" and r.get("plan_version") == version}
    per_lambda = {float(lam): {int(r["seed"]): 100 * float(r["mAP"]) for r in ft if r.get("lambda_c") == float(lam)}
                  for lam in sweep["values"]}
    answers = []
    for lam in sweep["values"]:
        v = per_lambda[float(lam)]
        vs_paper = ("—" if float(lam) == paper_lambda
                    else describe_interval(paired_difference(v, per_lambda.get(paper_lambda, {}))))
        if float(lam) != paper_lambda and v:
            d = paired_difference(v, per_lambda.get(paper_lambda, {}))
            if d["n"] >= 2:
                answers.append(f"- λ_c {lam:g} − λ_c {paper_lambda:g}: {verdict_phrase(d)} ({describe_interval(d)}).")
        last = [adapts[(float(lam), s)]["rounds"][-1] for s in seeds if (float(lam), s) in adapts
                and adapts[(float(lam), s)]["rounds"]]
        if not v:
            lines.append(f"| {lam:g} | (not run yet) | 0 | — | — | — | — | — | — |")
            continue
        m, s = mean_std(list(v.values()))

        def avg(key: str, rows: list[dict[str, Any]] = last) -> str:
            xs = [r[key] for r in rows if r.get(key) is not None]
            return f"{sum(xs) / len(xs):.2f}" if xs else "—"

        lines.append(f"| {lam:g} | {m:.2f} ± {s:.2f} | {len(v)} | {describe_interval(paired_difference(v, ref))} | "
                     f"{vs_paper} | {avg('kept_fraction')} | {avg('pseudo_label_precision')} | "
                     f"{avg('kept_classes')} | {avg('largest_class_share')} |")
    return lines + ([""] + answers if answers else []) + [""]


def rounds_lines(adapts: list[dict[str, Any]]) -> list[str]:
    lines = ["## Pseudo labels per round (hidden truth of the synthetic target)", "",
             "`argmax precision`: how often the model's top source class is a true action of the box (no threshold; "
             "round 1 = the unadapted SEAL model). `majority`: the precision of labelling every box with the most "
             "frequent true class — what a collapsed labeller scores.", "",
             "| version | labels | λ_c | seed | round | kept / seen | precision | majority | argmax precision | "
             "classes kept (of true) | largest share | entropy |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(x: Any, fmt: str = "{:.2f}") -> str:
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)

    for r in sorted(adapts, key=lambda r: (-r["plan_version"], r["labels"], r["lambda_c"], r["seed"])):
        for rd in r["rounds"]:
            lines.append(f"| {r['plan_version']} | {r['labels']} | {r['lambda_c']:g} | {r['seed']} | {rd['round']} | "
                         f"{rd['kept']} / {rd['samples_seen']} | {f(rd['pseudo_label_precision'])} | "
                         f"{f(rd['majority_class_frequency'])} | {f(rd['argmax_precision'])} | "
                         f"{rd['kept_classes']} ({rd['truth_classes']}) | {f(rd['largest_class_share'])} | "
                         f"{f(abs(rd['kept_label_entropy']) if rd['kept_label_entropy'] is not None else None)} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="configs/experiments/table5.yaml")
    ap.add_argument("--run-root", default="runs/table5", help="run directories (not committed)")
    ap.add_argument("--records", default="results/runs/table5", help="committed run records")
    ap.add_argument("--out", default="results/table5_synthetic.md",
                    help="the table (label_fraction.{md,png} go beside it)")
    ap.add_argument("--budget-min", type=float, default=None, help="start no new run after this many minutes")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--dry-run", action="store_true",
                    help="list every planned run (and its upstream) as 'reuse' (a matching record) or 'run'")
    ap.add_argument("--seeds", type=int, nargs="*", help="only these training seeds (default: the plan's)")
    ap.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES),
                    help="run only these parts of the plan: the table's fractions, the λ_c sweep, the curve")
    args = ap.parse_args()
    plan = yaml.safe_load((ROOT / args.plan).read_text())
    run_plan = {**plan, "seeds": [s for s in plan["seeds"] if not args.seeds or s in args.seeds]}  # the report keeps
    # the plan's seeds: --seeds only limits what this invocation runs
    records_dir = ROOT / args.records
    started = time.time()
    note = "report rebuilt from records only (--report-only)."
    if not args.report_only:
        common = [f"data.synthetic.preset={plan['preset']}", f"data.synthetic.seed={plan['world_seed']}",
                  "trainer.enable_progress_bar=false"]
        run_root = ROOT / args.run_root / f"w{plan['world_seed']}"
        deadline = started + 60 * args.budget_min if args.budget_min else None
        runner = Runner(ROOT, plan["experiment"], [plan["config"]], common, records_dir, run_root, deadline)
        jobs = Plan(run_plan, run_root).ordered(args.phases)
        if args.dry_run:
            print("\n".join(planned_runs([(runner, job) for job in jobs], ROOT)))
            return
        note = run_jobs(runner, jobs, started)
    records = with_plan_versions(load_records(records_dir))
    if any(r.get("kind") == "finetune" for r in records):  # nothing to show before the first finetune
        build_report(plan, records, ROOT / args.out, note)
        label_fraction_report(plan, records, (ROOT / args.out).parent / "label_fraction.md")  # beside the table
    else:
        print(f"no finetune record under {records_dir} yet: reports left as they are")


if __name__ == "__main__":
    main()
