"""Calibration of the SYNTHETIC transfer testbed: is the SEAL-style source model at the paper's strength?

Target fixed before the runs (the testbed issue): with `configs/testbed.yaml`, `pretrain` reaches source-val
frame-mAP >= 0.65 on the `small` world for each of world seeds 0, 1 and 2, in <= 10 minutes wall on 2 cores.
Settings were chosen on world seed 0 with training seed 100; the calibration below uses training seed 0.

Runs (each a committed record under `results/runs/testbed/`):
  - the testbed config on world seeds 0, 1, 2;
  - a capacity curve on world seed 0: model width (`model.stem_width` 4, 8 = the testbed, 16) and training length
    (`trainer.max_epochs` 4 = the testbed, 8: each a whole cosine schedule of its own), besides the source mAP after
    each epoch of the testbed run itself (its validation log);
  - the previous config (`configs/previous/table5_synthetic.yaml`) on the new world, as the issue asks.
Writes `results/testbed.md` and `results/testbed_capacity.png`.

    python scripts/calibrate_testbed.py                # run what is missing, then write the report
    python scripts/calibrate_testbed.py --report-only
    python scripts/calibrate_testbed.py --only calibration   # skip the capacity and old-config rows
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

from seal_transfer.experiment import Job, Runner, load_records, mean_std, provenance_lines, run_jobs
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
TARGET_MAP = 0.65
TARGET_WALL_S = 600.0
WORLD_SEEDS = (0, 1, 2)
WIDTHS = (4, 16)  # besides the testbed's own width
EPOCHS = (8,)  # besides the testbed's own 4
TESTBED_EPOCHS = 4
TRAIN_SEED = 0


def pretrain_extract(out_dir: Path) -> dict[str, Any]:
    m = json.loads((out_dir / "metrics.json").read_text())
    curve = []
    log = out_dir / "logs" / "metrics.csv"
    if log.exists():
        with log.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("val/mAP"):
                    curve.append({"epoch": int(row["epoch"]), "step": int(row["step"]), "mAP": float(row["val/mAP"])})
    keep = ("mAP", "top50_mAP", "epochs", "train_keyframes", "val_keyframes", "wall_time_s", "train_samples_per_s",
            "per_class_AP")
    return {**{k: m[k] for k in keep if k in m}, "val_curve": curve}


def _world0_job(run_root: Path, name: str, kind: str, extra: list[str], fields: dict[str, Any],
                configs: list[str] | None = None) -> Job:
    """A pretrain on world seed 0 with the calibration's training seed: one capacity point or the old config."""
    return Job(f"{name}__w0", "pretrain", ["data.synthetic.seed=0", f"seed={TRAIN_SEED}", *extra],
               run_root / f"{name}_w0", fields={"kind": kind, "world_seed": 0, "seed": TRAIN_SEED, **fields},
               extract=pretrain_extract, configs=configs)


def jobs(run_root: Path, only: str) -> list[Job]:
    out = []
    for world in WORLD_SEEDS:
        out.append(Job(f"testbed__w{world}", "pretrain", [f"data.synthetic.seed={world}", f"seed={TRAIN_SEED}"],
                       run_root / f"testbed_w{world}", fields={"kind": "calibration", "world_seed": world,
                                                               "seed": TRAIN_SEED}, extract=pretrain_extract))
    if only == "calibration":
        return out
    out += [_world0_job(run_root, f"width{w}", "capacity", [f"model.stem_width={w}"], {"stem_width": w})
            for w in WIDTHS]
    out += [_world0_job(run_root, f"epochs{e}", "capacity_epochs", [f"trainer.max_epochs={e}"], {"max_epochs": e})
            for e in EPOCHS]
    out.append(_world0_job(run_root, "old_config", "old_config", [], {},
                           configs=["configs/previous/table5_synthetic.yaml"]))
    return out


def plot(records: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_w, ax_e) = plt.subplots(1, 2, figsize=(10, 3.8))
    widths = sorted([(8, r) for r in records if r["name"] == "testbed__w0"]
                    + [(r["stem_width"], r) for r in records if r.get("kind") == "capacity"], key=lambda t: t[0])
    if widths:
        ax_w.plot([w for w, _ in widths], [100 * r["mAP"] for _, r in widths], "o-")
        for w, r in widths:
            ax_w.annotate(f"{r['stage_wall_time_s'] / 60:.0f} min", (w, 100 * r["mAP"]), textcoords="offset points",
                          xytext=(4, -12), fontsize=8)
    ax_w.axhline(100 * TARGET_MAP, color="grey", ls="--", lw=1)
    ax_w.set(xscale="log", xlabel="model.stem_width (slow-stem channels; stage widths scale with it)",
             ylabel="source-val frame-mAP (%)", title="capacity: width (world seed 0)")
    ax_w.set_xticks([w for w, _ in widths] or [8], [str(w) for w, _ in widths] or ["8"])
    ax_w.minorticks_off()
    for r in records:
        if r.get("kind") in ("calibration", "capacity_epochs") and r.get("val_curve"):
            curve = [c for c in r["val_curve"] if c["epoch"] < int(r.get("epochs") or 10**9)]  # not the re-validation
            label = (f"world seed {r['world_seed']}" if r["kind"] == "calibration"
                     else f"world seed 0, {r['max_epochs']}-epoch schedule")
            ax_e.plot([c["epoch"] + 1 for c in curve], [100 * c["mAP"] for c in curve], "o-" if r["kind"] ==
                      "calibration" else "s--", ms=3, label=label)
    ax_e.axhline(100 * TARGET_MAP, color="grey", ls="--", lw=1)
    ax_e.set(xlabel="epoch", ylabel="source-val frame-mAP (%)", title="epochs (each line one cosine schedule)")
    ax_e.legend(fontsize=8)
    fig.suptitle("SYNTHETIC testbed calibration", fontsize=10)
    fig.tight_layout()
    from seal_transfer.report.plots import save_figure

    save_figure(fig, out)
    plt.close(fig)


def _class_names(world_seed: int) -> dict[int, str]:
    """Source class names from the cached world's label map, if the world is on this machine (else ids only)."""
    from seal_transfer.data.formats.ava import read_labelmap
    from seal_transfer.data.synthetic.config import SynthConfig
    from seal_transfer.data.synthetic.world import world_name

    path = Path("~/.cache/seal_transfer").expanduser() / world_name(SynthConfig(preset="small", seed=world_seed))
    try:
        lm = read_labelmap(path / "seal" / "seal_atomic_actions.pbtxt")
    except Exception:  # noqa: BLE001 - names are a convenience of the report
        return {}
    return {int(c): lm.names[c] for c in lm.ids}


def per_class_lines(cal: list[dict[str, Any]]) -> list[str]:
    """Per-class source-val AP of every calibration run: where the model falls short of the target."""
    if not cal:
        return []
    names = _class_names(int(cal[0]["world_seed"]))
    ids = sorted({int(k) for r in cal for k in (r.get("per_class_AP") or {})})
    lines = ["## Per-class AP (where the source model falls short)", "",
             "| class | " + " | ".join(f"world {r['world_seed']}" for r in cal) + " |", "|---|" + "---|" * len(cal)]
    for c in ids:
        cells = []
        for r in cal:
            v = (r.get("per_class_AP") or {}).get(str(c))
            cells.append("—" if v is None else f"{v:.2f}")
        lines.append(f"| {names.get(c, c)} | " + " | ".join(cells) + " |")
    conditions = [r.get("conditions") for r in cal]
    if any(conditions):
        lines += ["", "Run conditions (load average before/after, OMP threads): " + "; ".join(
            f"world {r['world_seed']}: {c['load_average_before']}/{c['load_average_after']}, {c['omp_num_threads']}"
            for r, c in zip(cal, conditions) if c)]
    return lines + [""]


def wall_time_lines(pretrains: list[dict[str, Any]]) -> list[str]:
    """The same command on world 0 as Table 5's SEAL pretrain, one per training seed: its wall time against the
    machine's load when it started (the calibration runs above shared the machine with other work)."""
    rows = sorted((r for r in pretrains if r.get("kind") == "pretrain_seal"), key=lambda r: r["seed"])
    if not rows:
        return []
    lines = ["## Wall time against machine load (world 0, Table 5's SEAL pretrains)", "",
             "The testbed pretrain is also Table 5's SEAL row (`results/runs/table5/pretrain_seal__s*.json`). A run "
             "takes both cores; load ≈ 2 is the run itself, more means other work shared the machine.", "",
             "| training seed | source-val frame-mAP | stage wall (s) | load average before → after | CPU s (÷ wall) "
             "| ≤ 10 min |", "|---|---|---|---|---|---|"]
    for r in rows:
        c = r.get("conditions") or {}
        wall = float(r.get("stage_wall_time_s") or r["wall_time_s"])
        cpu = f"{c['cpu_seconds']:.0f} ({c['cpu_per_wall']:.2f})" if c.get("cpu_seconds") else "—"
        lines.append(f"| {r['seed']} | {r['mAP']:.3f} | {wall:.0f} | {c.get('load_average_before', '—')} → "
                     f"{c.get('load_average_after', '—')} | {cpu} | {'yes' if wall <= TARGET_WALL_S else 'no'} |")
    lines += ["", "Load averages are sampled before and after a run only, so they miss work that came and went "
              "during it; CPU seconds (recorded from this session on) do not depend on it."]
    return lines + [""]


def report(records: list[dict[str, Any]], out_md: Path, out_png: Path, note: str,
           table5_pretrains: list[dict[str, Any]] | None = None) -> None:
    cal = sorted([r for r in records if r.get("kind") == "calibration"], key=lambda r: r["world_seed"])
    lines = [
        "# Testbed calibration (SYNTHETIC `small` world v2)",
        "",
        f"**Target, fixed before the runs:** with `configs/testbed.yaml`, `pretrain` reaches source-val frame-mAP "
        f"≥ {TARGET_MAP:.2f} for each of world seeds 0, 1, 2, in ≤ {TARGET_WALL_S / 60:.0f} min wall on 2 cores. "
        "Settings were chosen on world seed 0 with training seed 100 (not reported); these runs use training seed 0.",
        "",
        "| world seed | source-val frame-mAP | wall (s) | train samples/s | epochs | meets target |",
        "|---|---|---|---|---|---|",
    ]
    for r in cal:
        ok = r["mAP"] >= TARGET_MAP and r["stage_wall_time_s"] <= TARGET_WALL_S
        lines.append(f"| {r['world_seed']} | {r['mAP']:.3f} | {r['stage_wall_time_s']:.0f} | "
                     f"{r.get('train_samples_per_s', float('nan')):.1f} | {r.get('epochs')} | "
                     f"{'yes' if ok else 'no'} |")
    if cal:
        m, s = mean_std([r["mAP"] for r in cal])
        met = sum(r["mAP"] >= TARGET_MAP and r["stage_wall_time_s"] <= TARGET_WALL_S for r in cal)
        lines += ["", f"Mean {m:.3f} ± {s:.3f}; **{met} of {len(cal)} world seeds meet the target.** Wall time is "
                  "the stage's own (world generation excluded; the world is generated once per seed and cached).", ""]
    lines += wall_time_lines(table5_pretrains or [])
    lines += per_class_lines(cal)
    cap = sorted([r for r in records if r.get("kind") == "capacity"], key=lambda r: r["stem_width"])
    base = [r for r in cal if r["world_seed"] == 0]
    if cap or base:
        lines += ["## Capacity", "", "![capacity](testbed_capacity.png)", "",
                  "| model.stem_width | source-val frame-mAP (world 0) | wall (s) |", "|---|---|---|"]
        rows = sorted([(r["stem_width"], r) for r in cap] + [(8, r) for r in base], key=lambda t: t[0])
        lines += [f"| {w} | {r['mAP']:.3f} | {r['stage_wall_time_s']:.0f} |" for w, r in rows]
        lines.append("")
    longer = sorted([r for r in records if r.get("kind") == "capacity_epochs"], key=lambda r: r["max_epochs"])
    if longer:
        lines += ["| trainer.max_epochs (a whole schedule) | source-val frame-mAP (world 0) | wall (s) |",
                  "|---|---|---|"]
        rows = sorted([(r["max_epochs"], r) for r in longer] + [(TESTBED_EPOCHS, r) for r in base],
                      key=lambda t: t[0])
        lines += [f"| {e} | {r['mAP']:.3f} | {r['stage_wall_time_s']:.0f} |" for e, r in rows]
        lines.append("")
    old = [r for r in records if r.get("kind") == "old_config"]
    if old:
        r = old[0]
        lines += ["## The previous config on the new world", "",
                  "`configs/previous/table5_synthetic.yaml` (the config of the earlier Table 5: tiny model at 64 px, "
                  f"overlap clip rule, 1 fps boxes, SGD) on world v2 seed 0: source-val mAP **{r['mAP']:.3f}** in "
                  f"{r['stage_wall_time_s']:.0f} s.", ""]
    lines += provenance_lines(records, note)
    with atomic_write(out_md) as handle:
        handle.write("\n".join(lines))
    plot(records, out_png)
    print(f"wrote {out_md} and {out_png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/testbed.yaml")
    ap.add_argument("--run-root", default="runs/testbed")
    ap.add_argument("--records", default="results/runs/testbed")
    ap.add_argument("--only", choices=("all", "calibration"), default="all")
    ap.add_argument("--names", nargs="*", help="run only these records (e.g. to split the runs over two processes)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--budget-min", type=float, default=None)
    ap.add_argument("--table5-records", default="results/runs/table5", help="Table 5's SEAL pretrains (wall times)")
    args = ap.parse_args()
    started = time.time()
    note = "report rebuilt from records only (--report-only)."
    if not args.report_only:
        deadline = started + 60 * args.budget_min if args.budget_min else None
        runner = Runner(ROOT, "testbed", [args.config], ["data.synthetic.preset=small",
                                                          "trainer.enable_progress_bar=false"],
                        ROOT / args.records, ROOT / args.run_root, deadline)
        note = run_jobs(runner, jobs(ROOT / args.run_root, args.only), started, args.names)
    results = ROOT / "results"
    report(load_records(ROOT / args.records), results / "testbed.md", results / "testbed_capacity.png", note,
           load_records(ROOT / args.table5_records))


if __name__ == "__main__":
    main()
