"""Behaviour check for refactors: run the CPU smoke chain and compare its outputs with another run of it.

The chain is pretrain -> adapt (2 rounds) -> finetune -> tubes on the tiny synthetic world (`configs/smoke.yaml`,
DataLoader workers off so batches arrive in one fixed order). `compare` reports, file by file, whether two
chains gave the same bytes: every stage's `metrics.json` (timings and the run folder's own path left out, the
only values allowed to differ), every round's `pseudo_labels.csv` and every `val_detections.csv`.

    python scripts/smoke_chain.py run /tmp/before          # at the old commit (e.g. in a git worktree)
    python scripts/smoke_chain.py run /tmp/after           # at the new one
    python scripts/smoke_chain.py compare /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from seal_transfer.experiment import comparable_metrics

ROOT = Path(__file__).resolve().parents[1]
STAGES = (("pretrain", []), ("adapt", ["adapt.rounds=2", "adapt.epochs_per_round=1"]), ("finetune", []),
          ("tubes", ["--config", str(ROOT / "configs" / "smoke_tubes.yaml")]))


def run_chain(out: Path) -> None:
    common = ["--config", str(ROOT / "configs" / "smoke.yaml"), f"run_dir={out}", "data.num_workers=0",
              "trainer.enable_progress_bar=false", "seed=0"]
    for stage, extra in STAGES:
        print(f"== {stage}", flush=True)
        subprocess.run([sys.executable, "-m", f"seal_transfer.{stage}", *common, *extra], cwd=ROOT, check=True)


def compare(a: Path, b: Path) -> int:
    files = sorted({p.relative_to(a) for pattern in ("*/metrics.json", "*/round_*/metrics.json", "**/pseudo_labels.csv",
                                                      "**/val_detections.csv") for p in a.glob(pattern)})
    if not files:
        print(f"{a}: no chain outputs found")
        return 1
    differ = 0
    for rel in files:
        other = b / rel
        if not other.is_file():
            print(f"MISSING  {rel}")
            differ += 1
            continue
        if rel.suffix == ".json":
            same = (comparable_metrics(json.loads((a / rel).read_text()), a)
                    == comparable_metrics(json.loads(other.read_text()), b))
        else:
            same = (a / rel).read_bytes() == other.read_bytes()
        print(f"{'same' if same else 'DIFFERS'}  {rel}")
        differ += not same
    print(f"{len(files) - differ} of {len(files)} files identical")
    return 1 if differ else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("out", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.command == "run":
        run_chain(args.out.resolve())
    else:
        raise SystemExit(compare(args.a.resolve(), args.b.resolve()))


if __name__ == "__main__":
    main()
