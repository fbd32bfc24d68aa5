#!/usr/bin/env python
"""Reproduce the form of the paper's Table 4 on the synthetic world and write results/table4_synthetic.md.

Runs, through the real CLIs (each command is recorded with its wall time):
  1. pretrain SlowFast + RoI head on the synthetic SEAL Clips            → Slowfast-T weights
  2. pretrain the same backbone as a generic clip classifier (Kinetics stand-in) → second-stream ('TSP-T') weights
  3. tubes: extract both streams, train AA / CA temporal detectors, evaluate (tIoU 0.5:0.05:0.95)
Finished steps are skipped on a rerun (each stage keeps its run directory), so an interrupted run resumes.

    python scripts/reproduce_table4.py --preset small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# The synthetic source videos are 20 fps with 1-3 s atomic actions, so the streams keep the paper's structure
# (SlowFast stream at the full rate, second stream at half the rate with half the window, 4 vs 2 fps boxes, both
# on one grid) at a 0.4 s step that the 2-core CPU budget allows.
SYNTHETIC_STREAMS = [
    "tubes.slowfast.fps=20", "tubes.slowfast.window=16", "tubes.slowfast.stride=8", "tubes.slowfast.box_fps=4",
    "tubes.second.fps=10", "tubes.second.window=8", "tubes.second.stride=4", "tubes.second.box_fps=2",
]
SYNTHETIC_TAD = ["tubes.tad.hidden=64", "tubes.tad.levels=4", "tubes.train.batch_size=8", "tubes.train.lr=0.001"]
# Table 4 buckets scaled to the synthetic class counts (paper: AA top60 of 172; CA top50 / top120 / 200).
SYNTHETIC_BUCKETS = {
    "tiny": ["tubes.aa_buckets.ranges=[[0,3]]", "tubes.ca_buckets.ranges=[[0,2],[0,4],[0,6]]"],
    "small": ["tubes.aa_buckets.ranges=[[0,7]]", "tubes.ca_buckets.ranges=[[0,4],[0,9],[0,15]]"],
    "paper": ["tubes.aa_buckets.ranges=[[0,10]]", "tubes.ca_buckets.ranges=[[0,6],[0,13],[0,22]]"],
}


def run(cmd: list[str], log: list[dict], history: Optional[Path] = None) -> None:
    """Run one CLI; its wall time is also kept in `history` (JSON), so a rerun that finds the stage finished
    still reports how long the run that did the work took."""
    shown = " ".join(shlex.quote(c) for c in cmd)
    print(f"\n$ {shown}", flush=True)
    started = time.time()
    result = subprocess.run(cmd, cwd=REPO)
    seconds = round(time.time() - started, 1)
    if result.returncode != 0:
        sys.exit(f"command failed with exit code {result.returncode}: {shown}")
    times = json.loads(history.read_text()) if history is not None and history.is_file() else {}
    first = times.setdefault(shown, seconds)
    log.append({"command": shown, "seconds": seconds, "first_seconds": first})
    if history is not None:
        history.parent.mkdir(parents=True, exist_ok=True)
        history.write_text(json.dumps(times, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
    parser.add_argument("--run-dir", default=None, help="default: runs/table4_<preset>")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--pretrain-batches", type=int, default=0,
                        help="cap on training batches per pretrain epoch (trainer.limit_train_batches); 0 = all")
    parser.add_argument("--tad-epochs", type=int, default=40)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for every command, e.g. data.synthetic.source_train=24")
    parser.add_argument("--tad-seeds", type=int, nargs="+", default=[0],
                        help="seeds for the temporal detectors; seeds after the first retrain only the CA experiments "
                             "on the first seed's features (extraction is deterministic), for the two-stream verdict")
    parser.add_argument("--note", action="append", default=[], help="extra line for the report's notes")
    parser.add_argument("--output", default=str(REPO / "results" / "table4_synthetic.md"))
    args = parser.parse_args()
    if args.tad_seeds[0] != 0:
        parser.error("--tad-seeds: the first seed is the main run's (0), e.g. --tad-seeds 0 1 2")
    run_dir = Path(args.run_dir or f"runs/table4_{args.preset}")
    generic_dir = Path(f"{run_dir}_generic")
    py = [sys.executable, "-m"]
    common = ["--config", "configs/smoke.yaml", f"data.synthetic.preset={args.preset}",
              "trainer.enable_progress_bar=false", *args.override]
    limit = [f"trainer.limit_train_batches={args.pretrain_batches}"] if args.pretrain_batches else []
    log: list[dict] = []
    history = REPO / run_dir / "reproduce_table4_times.json"
    started = time.time()
    epochs = [f"trainer.max_epochs={args.pretrain_epochs}", *limit]
    run(py + ["seal_transfer.pretrain"] + common + [f"run_dir={run_dir}", *epochs], log, history)
    run(py + ["seal_transfer.pretrain"] + common + ["task=classification", f"run_dir={generic_dir}", *epochs], log,
        history)
    run(py + ["seal_transfer.tubes"] + common + [
        f"run_dir={run_dir}", f"tubes.second_stream_init={generic_dir}/pretrain/model.pt",
        f"tubes.train.epochs={args.tad_epochs}", *SYNTHETIC_STREAMS, *SYNTHETIC_TAD, *SYNTHETIC_BUCKETS[args.preset],
    ], log, history)
    extra = {}
    for seed in args.tad_seeds[1:]:
        seed_dir = Path(f"{run_dir}_tadseed{seed}")
        _share_features(REPO / run_dir, REPO / seed_dir)
        run(py + ["seal_transfer.tubes"] + common + [
            f"run_dir={seed_dir}", f"seed={seed}", f"tubes.second_stream_init={generic_dir}/pretrain/model.pt",
            "tubes.experiments=[ca:second,ca:second+slowfast]", f"tubes.train.epochs={args.tad_epochs}",
            *SYNTHETIC_STREAMS, *SYNTHETIC_TAD, *SYNTHETIC_BUCKETS[args.preset],
        ], log, history)
        extra[seed] = json.loads((REPO / seed_dir / "tubes" / "metrics.json").read_text())["experiments"]
    total = time.time() - started
    metrics = json.loads((REPO / run_dir / "tubes" / "metrics.json").read_text())
    Path(args.output).write_text(report(args, metrics, log, total, extra))
    print(f"\nwrote {args.output}")


def _share_features(source_run: Path, seed_run: Path) -> None:
    """A further TAD seed reads the first run's features and weights (links, not copies): only training differs."""
    (seed_run / "tubes").mkdir(parents=True, exist_ok=True)
    for link, target in ((seed_run / "pretrain", source_run / "pretrain"),
                         (seed_run / "tubes" / "features", source_run / "tubes" / "features")):
        if not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=True)


def report(args: argparse.Namespace, metrics: dict, log: list[dict], total: float,
           extra: Optional[dict[int, dict]] = None) -> str:
    rows = metrics["experiments"]
    seeds = {args.tad_seeds[0]: rows, **(extra or {})}
    lines = [
        "# Table 4 on the synthetic world (SYNTHETIC — not the paper's SEAL data)",
        "",
        f"Produced by `python scripts/reproduce_table4.py {shlex.join(sys.argv[1:])}` "
        f"(pretrain epochs {args.pretrain_epochs}, at most {args.pretrain_batches or 'all'} batches each; TAD epochs "
        f"{args.tad_epochs}; TAD seeds {' '.join(map(str, args.tad_seeds))}) on {platform.node() or 'this machine'}"
        f" ({os.cpu_count()} CPU cores, device `{metrics.get('device')}`), wall time {total / 60:.1f} min for this"
        f" invocation, {sum(e['first_seconds'] for e in log) / 60:.1f} min for the commands' first runs.",
        f"Synthetic world preset `{args.preset}`"
        + (f" with {', '.join(f'`{o}`' for o in args.override)}" if args.override else "")
        + ", tiny SlowFast model (configs/smoke.yaml). Numbers are average"
        " mAP (%) over tIoU 0.5:0.05:0.95, per tube; bucket columns rank classes by training frequency, scaled to the"
        " synthetic class counts (the header gives how many classes each bucket holds).",
        "",
        "## Results",
        "",
        metrics["table4"],
        "",
        f"(Seed {args.tad_seeds[0]}; the two-stream comparison below repeats the CA detectors for every TAD seed.)"
        if len(args.tad_seeds) > 1 else "",
        "Paper (real SEAL, for reference): AA Slowfast-T top60 40.82; CA TSP-T 82.92 / 66.40 / 49.71; "
        "CA TSP-T+Slowfast-T 83.85 / 66.93 / 50.47 (top50 / top120 / 200).",
        "",
        "## Does the two-stream input help?",
        "",
        verdict(rows) if len(seeds) < 2 else seeds_verdict(seeds),
        "",
        "## Commands (exact, in order) and wall time",
        "",
        "Wall time of the invocation that did the work (first run), and of this one (a stage that is already finished",
        "returns in seconds).",
        "",
        "| # | command | first run | this run |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i + 1} | `{e['command']}` | {e['first_seconds']:.0f} s | {e['seconds']:.0f} s |"
              for i, e in enumerate(log)]
    lines += [
        "",
        "A rerun skips finished stages (delete the run directories or pass force=true to redo them).",
        "",
        "## Notes",
        "",
        "- Slowfast-T = features of the SEAL-Clips-pretrained detector (step 1); the second stream stands in for TSP-T"
        " with the generic-clip classifier's backbone (step 2) — trained on a different task and data, as TSP was"
        " trained on ActivityNet, but a far weaker stand-in than the released TSP checkpoint.",
        "- Stream settings are scaled to the 20 fps synthetic videos (see the command); the paper's real-data"
        " settings are the defaults in configs/tubes_seal_r50.yaml.",
        "- Per-experiment details (mAP at each tIoU, per-class AP, predictions) are in"
        f" `{args.run_dir or f'runs/table4_{args.preset}'}/tubes/{{aa,ca}}/*/`.",
        "- With a few dozen validation tubes, differences of a few points are within run-to-run noise.",
        *[f"- {note}" for note in args.note],
    ]
    return "\n".join(lines) + "\n"


def seeds_verdict(seeds: dict[int, dict]) -> str:
    """CA mAP (all) of single- vs two-stream per TAD seed, on the same features."""
    single = np.array([100 * r["ca/second"]["all"] for r in seeds.values()])
    double = np.array([100 * r["ca/second+slowfast"]["all"] for r in seeds.values()])
    gain = double - single
    lines = [
        f"CA mAP(all) over {len(seeds)} temporal-detector seeds ({', '.join(map(str, seeds))}) on the same features:",
        "",
        "| features | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for name, values in (("TSP-T (stand-in)", single), ("TSP-T (stand-in)+Slowfast-T", double),
                         ("two-stream gain", gain)):
        cells = " | ".join(f"{v:+.2f}" if name == "two-stream gain" else f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {cells} | {values.mean():.2f} ± {values.std(ddof=1):.2f} |")
    wins = int((gain > 0).sum())
    if wins == len(gain) and gain.mean() > gain.std(ddof=1):
        answer = (f"Yes, as in the paper (+0.76 mAP there): the two-stream input raises CA mAP in all {len(gain)} "
                  f"seeds, by {gain.mean():.2f} ± {gain.std(ddof=1):.2f} points.")
    elif wins == 0:
        answer = f"No, unlike the paper: the two-stream input lowers CA mAP in all {len(gain)} seeds."
    else:
        answer = (f"Not reliably: the two-stream input is ahead in {wins} of {len(gain)} seeds (gain "
                  f"{gain.mean():.2f} ± {gain.std(ddof=1):.2f} points), within the spread between seeds.")
    lines += ["", answer + " Only the detector's seed varies here; features, backbones and the world are fixed."]
    return "\n".join(lines)


def verdict(rows: dict) -> str:
    single, double = rows.get("ca/second"), rows.get("ca/second+slowfast")
    if not single or not double:
        return "Not measured (the run did not include both ca:second and ca:second+slowfast)."
    keys = [k for k in double if k.startswith("top") or k == "all"]
    diffs = {k: 100 * (double[k] - single[k]) for k in keys if double[k] == double[k] and single[k] == single[k]}
    shown = ", ".join(f"{k} {v:+.2f}" for k, v in diffs.items())
    gain = diffs.get("all", 0.0)
    if gain > 0:
        answer = "Yes, as in the paper (+0.76 mAP there): adding Slowfast-T to the second stream raises CA mAP"
    elif gain < 0:
        answer = "No, unlike the paper: adding Slowfast-T to the second stream lowers CA mAP"
    else:
        answer = "No difference: adding Slowfast-T leaves CA mAP unchanged"
    return (f"{answer} (two-stream minus single-stream, points: {shown}). One seed on a small validation set: a "
            "difference of this size is within run-to-run noise, so this is weak evidence either way.")


if __name__ == "__main__":
    main()
