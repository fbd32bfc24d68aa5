"""Standalone metrics: `python -m seal_transfer.evaluate {ava,tad} ...` (official AVA / ActivityNet numbers).

  ava GT_CSV DET_CSV --labelmap PBTXT [--exclusions CSV] [--protocol 2020|2019] [--json OUT]
      per-class AP lines, then `mAP@0.5IOU <value>` as the last line
  tad GT_JSON PRED_JSON [--subset validation] [--tiou 0.5:0.05:0.95] [--json OUT]
      `mAP@<t> <value>` per threshold, then `average-mAP <value>` as the last line

Counts, timings and warnings go to stderr; user mistakes exit 2 with `error: file:line: ...`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seal_transfer.cli import guarded_main
from seal_transfer.data.formats.activitynet import align_video_ids, read_activitynet_gt, read_activitynet_predictions
from seal_transfer.data.formats.ava import AvaTable, read_ava_csv, read_exclusions, read_labelmap
from seal_transfer.errors import UserError, located
from seal_transfer.evaluation.frame_map import PROTOCOLS, frame_map
from seal_transfer.evaluation.temporal_map import DEFAULT_TIOU_THRESHOLDS, average_map
from seal_transfer.utils.fileio import write_json


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.10f}"


def read_ava_for_eval(path: str | Path, kind: str) -> tuple[AvaTable, list[tuple[str, float]]]:
    """Read an AVA CSV as the official evaluator accepts it: also `video,timestamp` rows (2020 GT: keyframes
    without actions) and 7-column rows (no person id / no score).

    The common 8-column file takes the fast reader directly; only when that fails are the official extras
    rewritten (blank line for a 2-column row, default appended for a 7-column row, so line numbers in errors
    still point into the original file) and the file read again. Reader warnings (inverted or empty boxes) are
    in `table.notes`, naming the original file; they are not printed here.
    """
    path = Path(path)
    try:
        return read_ava_csv(path, kind, warn=False), []
    except UserError as first_error:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise first_error from None
        negatives: list[tuple[str, float]] = []
        filler = ",-1" if kind == "gt" else ",1.0"
        out: list[str] = []
        changed = False
        for lineno, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            fields = [f.strip() for f in stripped.split(",")] if stripped and not stripped.startswith("#") else []
            if len(fields) == 2 and kind == "gt":
                try:
                    negatives.append((fields[0], float(fields[1])))
                except ValueError:
                    raise located(path, lineno, f"timestamp '{fields[1]}' is not a number") from None
                out.append("")
                changed = True
            elif len(fields) == 7:
                out.append(stripped + filler)
                changed = True
            else:
                out.append(line)
        if not changed:
            raise
        import tempfile  # only for the official extras: not worth its import time on every run

        with tempfile.TemporaryDirectory() as tmp:
            rewritten = Path(tmp) / path.name
            rewritten.write_text("\n".join(out) + "\n", encoding="utf-8")
            try:
                table = read_ava_csv(rewritten, kind, warn=False)
            except UserError as exc:
                raise UserError(str(exc).replace(str(rewritten), str(path))) from None
        table.source = str(path)
        table.notes = [note.replace(str(rewritten), str(path)) for note in table.notes]
        return table, negatives


def parse_thresholds(text: str) -> np.ndarray:
    """'0.5:0.05:0.95' (inclusive range, np.linspace as the official default) or '0.3,0.5,0.7'."""
    try:
        if ":" in text:
            start, step, stop = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            return np.linspace(start, stop, count)
        values = np.asarray([float(x) for x in text.split(",") if x.strip()], dtype=np.float64)
    except ValueError:
        raise UserError(f"--tiou {text!r}: expected START:STEP:STOP or a comma-separated list of numbers") from None
    if values.size == 0:
        raise UserError(f"--tiou {text!r}: no thresholds")
    return values


def run_ava(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    labelmap = read_labelmap(args.labelmap)
    gt, negatives = read_ava_for_eval(args.gt, "gt")
    detections, _ = read_ava_for_eval(args.detections, "detections")
    exclusions = read_exclusions(args.exclusions) if args.exclusions else set()
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = frame_map(gt, detections, labelmap.ids, exclusions=exclusions, negative_keyframes=negatives,
                           iou_threshold=args.iou, protocol=args.protocol, top_k=args.top_k)
    t2 = time.perf_counter()
    for note in [*gt.notes, *detections.notes, *result.warnings]:
        print(f"warning: {note}", file=sys.stderr)
    degenerate_gt = f" ({result.num_degenerate_gt_boxes} without area)" if result.num_degenerate_gt_boxes else ""
    print(
        f"protocol {result.protocol}: {result.num_keyframes} keyframes scored, {result.num_gt_boxes} GT boxes"
        f"{degenerate_gt}, "
        f"{result.num_detections_evaluated}/{result.num_detections} detections evaluated "
        f"(ignored: {result.num_ignored_class} class not in label map, {result.num_dropped_excluded} excluded, "
        f"{result.num_dropped_unscored} on keyframes without GT, {result.num_dropped_top_k} beyond top-{result.top_k}"
        f", {result.num_dropped_invalid_box} empty or inverted boxes); parse {t1 - t0:.2f} s, evaluate {t2 - t1:.2f} s",
        file=sys.stderr,
    )
    label = f"{args.iou}IOU"
    for cid, ap in result.per_class.items():
        print(f"AP@{label}\t{cid}\t{labelmap.names[cid]}\t{_fmt(ap)}")
    print(f"mAP@{label} {_fmt(result.mAP)}")
    if args.json:
        payload = result.to_json()
        payload.update({
            "class_names": {str(c): labelmap.names[c] for c in labelmap.ids},
            "groundtruth": str(args.gt), "detections": str(args.detections), "labelmap": str(args.labelmap),
            "exclusions": str(args.exclusions) if args.exclusions else None,
            "num_negative_keyframes": len(negatives),
            "seconds": {"parse": round(t1 - t0, 4), "evaluate": round(t2 - t1, 4)},
        })
        write_json(args.json, payload)
    return 0


def run_tad(args: argparse.Namespace) -> int:
    thresholds = parse_thresholds(args.tiou) if args.tiou else DEFAULT_TIOU_THRESHOLDS
    t0 = time.perf_counter()
    subset = None if args.subset in ("", "all") else args.subset
    gt, videos = read_activitynet_gt(args.gt, subset)
    predictions = read_activitynet_predictions(args.predictions)
    if not args.exact_ids:
        gt, videos, note = align_video_ids(gt, videos, predictions)
        if note:
            print(f"warning: {note}", file=sys.stderr)
    t1 = time.perf_counter()
    result = average_map(gt, predictions, thresholds)
    t2 = time.perf_counter()
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(
        f"subset {args.subset}: {len(videos)} videos, {result.num_gt} GT segments, {len(result.class_names)} classes, "
        f"{result.num_predictions_evaluated}/{result.num_predictions} predictions evaluated "
        f"({result.num_ignored_label} with a label not in the GT); parse {t1 - t0:.2f} s, evaluate {t2 - t1:.2f} s",
        file=sys.stderr,
    )
    for t, value in result.mAP_at.items():
        print(f"mAP@{t:.2f} {_fmt(value)}")
    print(f"average-mAP {_fmt(result.average_mAP)}")
    if args.json:
        payload = result.to_json()
        payload.update({
            "groundtruth": str(args.gt), "predictions": str(args.predictions), "subset": args.subset,
            "num_videos": len(videos), "seconds": {"parse": round(t1 - t0, 4), "evaluate": round(t2 - t1, 4)},
        })
        write_json(args.json, payload)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seal_transfer.evaluate",
        description="Official-equivalent metrics: AVA frame-mAP (ava) and ActivityNet temporal detection mAP (tad).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ava = sub.add_parser("ava", help="AVA frame-mAP@IoU (ActivityNet get_ava_performance.py numbers)")
    ava.add_argument("gt", metavar="GT_CSV", help="AVA ground truth CSV (video,ts,x1,y1,x2,y2,action,person)")
    ava.add_argument("detections", metavar="DET_CSV", help="detections CSV (video,ts,x1,y1,x2,y2,action,score)")
    ava.add_argument("--labelmap", required=True, metavar="PBTXT", help="label map (item{} or label{} layout)")
    ava.add_argument("--exclusions", metavar="CSV", help="excluded keyframes (video,timestamp)")
    ava.add_argument("--protocol", choices=PROTOCOLS, default="2020",
                     help="2020: ActivityNet master (detections on keyframes without GT ignored); 2019: the older "
                          "code PySlowFast/mmaction2 copied (they count as false positives). Default 2020")
    ava.add_argument("--iou", type=float, default=0.5, help="IoU threshold (default 0.5)")
    ava.add_argument("--top-k", type=int, default=50, help="detections kept per keyframe, 0 = all (default 50)")
    ava.add_argument("--json", metavar="OUT", help="also write the result as JSON (atomically)")
    ava.set_defaults(run=run_ava)
    tad = sub.add_parser("tad", help="temporal detection average-mAP (ActivityNet eval_detection.py numbers)")
    tad.add_argument("gt", metavar="GT_JSON", help="ActivityNet GT: {database: {vid: {subset, annotations}}}")
    tad.add_argument("predictions", metavar="PRED_JSON", help="predictions: {results: {vid: [{segment,label,score}]}}")
    tad.add_argument("--subset", default="validation", help="GT subset to score ('all' = every video)")
    tad.add_argument("--tiou", help="thresholds START:STEP:STOP or a,b,c (default 0.5:0.05:0.95)")
    tad.add_argument("--exact-ids", action="store_true",
                     help="never strip a 'v_' prefix from GT video ids to meet the prediction ids")
    tad.add_argument("--json", metavar="OUT", help="also write the result as JSON (atomically)")
    tad.set_defaults(run=run_tad)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.command == "ava" and not 0.0 < args.iou <= 1.0:
        raise UserError(f"--iou {args.iou}: must be in (0, 1]")
    return int(args.run(args))


def cli(argv: Sequence[str] | None = None) -> None:
    sys.exit(guarded_main(main, argv))


if __name__ == "__main__":
    cli()
