#!/usr/bin/env python
"""Draw the figures of a run directory and write a markdown summary beside them.

    python scripts/make_report.py RUN_DIR [--out results/] [--pr-classes 1,4,7] [--sweep SWEEP.csv] [--title T]

For every finished stage of RUN_DIR (pretrain, adapt, finetune) it writes <stage>_training_curves.png,
<stage>_per_class_ap.png, <stage>_pr_curves.png, adapt_pseudo_labels.png, and (with --sweep, a CSV/JSON of rows
with lambda_c, mAP, kept_fraction, pseudo_label_precision) lambda_sweep.png, then OUT/report.md with the tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seal_transfer.cli import guarded_main
from seal_transfer.errors import UserError


def _class_list(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise UserError(f"--pr-classes {text!r}: expected comma-separated class ids, e.g. 1,4,7") from None


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/make_report.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (holds pretrain/, adapt/, finetune/)")
    parser.add_argument("--out", default="results", help="folder for the PNGs and report.md (default: results)")
    parser.add_argument("--pr-classes", type=str, default="", help="class ids for the PR curves (default: the "
                        "6 classes with the most validation GT)")
    parser.add_argument("--sweep", help="lambda_c sweep results (CSV with a header, or JSON rows)")
    parser.add_argument("--title", help="report title")
    args = parser.parse_args(list(argv))
    from seal_transfer.report import build_report

    report = build_report(args.run_dir, args.out, pr_classes=_class_list(args.pr_classes) or None,
                          sweep=args.sweep, title=args.title)
    pngs = sorted(p.name for p in Path(args.out).glob("*.png"))
    print(f"wrote {report} and {len(pngs)} figure(s) in {args.out}: {', '.join(pngs)}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded_main(main))
