"""Benchmark the evaluators on deterministic AVA-val-scale and ActivityNet-scale synthetic inputs.

    python scripts/bench_eval.py                 # full scale, writes results/bench_eval.md
    python scripts/bench_eval.py --scale 0.01    # quick check

AVA input: 64 videos x 897 keyframes (~57k), ~200k GT rows over the 80 AVA classes (evaluated on the 60-class
label map), ~1.5M detections (jittered GT boxes + false-positive boxes, ~11 class scores per box, ~0.5% rows of
classes outside the label map). TAD input: ~10k GT segments over 200 classes, ~200k predictions.
Each evaluation runs in a fresh child process that times parsing and evaluation separately and reports its peak
resident memory (VmHWM), so generation does not pollute the numbers. The CLI is also timed end to end (wall and
CPU seconds, `--repeats` runs, median), on the plain files and on the issue-13 scenario: the same files with 500
excluded keyframes and 8 detection rows whose box has y2 < y1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seal_transfer.data.formats.ava import read_labelmap
from seal_transfer.utils.fileio import atomic_write, write_json

REPO = Path(__file__).resolve().parents[1]

LABELMAP = REPO / "seal_transfer" / "resources" / "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
N_VIDEOS = 64
KEYFRAMES_PER_VIDEO = 897  # 902..1798
OFFICIAL_NOTE = ("The official ActivityNet code was reported by the project owner to need 168 s (AVA; an earlier "
                 "report: ~260 s and ~1 GB) and 95 s (TAD, 10k GT / 127k predictions) at full scale on a 2-core "
                 "machine (issue 13); those are the owner's measurements, not ours (the official code was not run "
                 "here).")
N_EXCLUDED = 500  # issue-13 scenario: excluded keyframes
N_INVERTED = 8  # issue-13 scenario: detection rows with y2 < y1


# ------------------------------------------------------------------------------------------------ generators


def _video_ids(rng: np.random.Generator, n: int, length: int = 11) -> np.ndarray:
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
    letters = alphabet[rng.integers(0, alphabet.size, size=(n, length))]
    return np.array(["".join(row) for row in letters])  # n videos, not rows


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def generate_ava(scale: float, seed: int) -> dict[str, np.ndarray]:
    """Deterministic AVA-like GT and detections as column arrays (see the module docstring for the sizes)."""
    rng = np.random.default_rng(seed)
    eval_ids = np.asarray(read_labelmap(LABELMAP).ids, dtype=np.int64)
    all_ids = np.arange(1, 81, dtype=np.int64)
    outside = np.setdiff1d(all_ids, eval_ids)
    per_video = max(1, int(round(KEYFRAMES_PER_VIDEO * scale)))
    videos = _video_ids(rng, N_VIDEOS)
    kf_video = np.repeat(np.arange(N_VIDEOS), per_video)
    kf_ts = np.tile(902 + np.arange(per_video), N_VIDEOS)
    n_kf = kf_video.size
    # Persons: 1 + Poisson(0.6) per keyframe; each with 1 + Poisson(1.2) distinct labels (skewed class frequency).
    persons = (1 + rng.poisson(0.6, n_kf)) * (rng.random(n_kf) >= 0.03)  # ~3% keyframes without GT
    p_kf = np.repeat(np.arange(n_kf), persons)
    n_p = p_kf.size
    cx, cy = rng.uniform(0.15, 0.85, n_p), rng.uniform(0.3, 0.7, n_p)
    w, h = rng.uniform(0.1, 0.35, n_p), rng.uniform(0.3, 0.8, n_p)
    p_box = np.round(np.stack([_clip01(cx - w / 2), _clip01(cy - h / 2), _clip01(cx + w / 2), _clip01(cy + h / 2)],
                              axis=1), 3)
    class_weight = 1.0 / np.arange(1, 81) ** 0.9
    class_weight /= class_weight.sum()
    labels_per_person = np.minimum(1 + rng.poisson(1.2, n_p), 6)
    g_person = np.repeat(np.arange(n_p), labels_per_person)
    g_label = rng.choice(all_ids, size=g_person.size, p=class_weight)
    # Distinct labels per person: drop repeats of (person, label).
    _, first = np.unique(g_person * 100 + g_label, return_index=True)
    first.sort()
    g_person, g_label = g_person[first], g_label[first]
    person_in_kf = np.arange(n_p) - np.repeat(np.cumsum(persons) - persons, persons)
    gt = {
        "video": videos[kf_video[p_kf[g_person]]], "ts": kf_ts[p_kf[g_person]].astype(np.float64),
        "box": p_box[g_person], "label": g_label, "person": person_in_kf[g_person],
    }
    # Detected boxes: each person found with p=0.9 (jittered), plus Poisson(0.7) false-positive boxes per keyframe.
    found = rng.random(n_p) < 0.9
    d_kf_tp = p_kf[found]
    jitter = rng.normal(0.0, 0.03, (int(found.sum()), 4))
    d_box_tp = p_box[found] + jitter
    n_fp = rng.poisson(0.7, n_kf)
    d_kf_fp = np.repeat(np.arange(n_kf), n_fp)
    fx, fy = rng.uniform(0.1, 0.9, d_kf_fp.size), rng.uniform(0.2, 0.8, d_kf_fp.size)
    fw, fh = rng.uniform(0.05, 0.3, d_kf_fp.size), rng.uniform(0.2, 0.7, d_kf_fp.size)
    d_box_fp = np.stack([fx - fw / 2, fy - fh / 2, fx + fw / 2, fy + fh / 2], axis=1)
    d_kf = np.concatenate([d_kf_tp, d_kf_fp])
    d_box = np.round(_clip01(np.concatenate([d_box_tp, d_box_fp])), 3)
    d_box[:, 2] = np.maximum(d_box[:, 2], d_box[:, 0])
    d_box[:, 3] = np.maximum(d_box[:, 3], d_box[:, 1])
    d_person = np.concatenate([np.flatnonzero(found), np.full(d_kf_fp.size, -1)])
    # ~11 class scores per detected box: its true labels (high scores) + random label-map classes (low scores).
    n_scores = 8 + rng.poisson(3.0, d_kf.size)
    s_box = np.repeat(np.arange(d_kf.size), n_scores)
    s_label = rng.choice(eval_ids, size=s_box.size)
    stray = rng.random(s_box.size) < 0.005
    s_label[stray] = rng.choice(outside, size=int(stray.sum()))
    s_score = rng.beta(1.0, 4.0, s_box.size)
    # True labels of matched persons: add rows with high scores.
    gt_rows_of_person = np.zeros(n_p, dtype=np.int64)
    np.add.at(gt_rows_of_person, g_person, 1)
    tp_boxes = np.flatnonzero(d_person >= 0)
    counts = gt_rows_of_person[d_person[tp_boxes]]
    t_box = np.repeat(tp_boxes, counts)
    order = np.argsort(g_person, kind="stable")
    starts = np.searchsorted(g_person[order], d_person[tp_boxes])
    within = np.arange(t_box.size) - np.repeat(np.cumsum(counts) - counts, counts)
    t_label = g_label[order][np.repeat(starts, counts) + within]
    t_score = rng.beta(2.0, 3.0, t_box.size)
    det_box_idx = np.concatenate([s_box, t_box])
    det_label = np.concatenate([s_label, t_label])
    det_score = np.round(np.concatenate([s_score, t_score]), 6)
    # Distinct (box, label): keep the highest score; shuffle rows within each keyframe (files are not sorted).
    key = det_box_idx * 100 + det_label
    best = np.lexsort((-det_score, key))
    keep = best[np.concatenate([[True], key[best][1:] != key[best][:-1]])]
    det_box_idx, det_label, det_score = det_box_idx[keep], det_label[keep], det_score[keep]
    shuffle = np.lexsort((rng.random(det_box_idx.size), d_kf[det_box_idx]))
    det_box_idx, det_label, det_score = det_box_idx[shuffle], det_label[shuffle], det_score[shuffle]
    det = {
        "video": videos[kf_video[d_kf[det_box_idx]]], "ts": kf_ts[d_kf[det_box_idx]].astype(np.float64),
        "box": d_box[det_box_idx], "label": det_label, "score": det_score,
    }
    return {"gt": gt, "det": det, "num_keyframes": n_kf}


def write_ava_csv_fast(path: Path, cols: dict[str, np.ndarray], last: str) -> None:
    """Write the AVA layout with %.3f boxes (like the official files) without a per-row Python format call."""
    box = cols["box"]
    parts = [
        cols["video"].astype(object), np.char.zfill(cols["ts"].astype(np.int64).astype(str), 4).astype(object),
        *[np.char.mod("%.3f", box[:, i]).astype(object) for i in range(4)],
        cols["label"].astype(str).astype(object),
        (cols["person"].astype(str) if last == "person" else np.char.mod("%.6f", cols["score"])).astype(object),
    ]
    lines = parts[0]
    for part in parts[1:]:
        lines = lines + "," + part
    with atomic_write(path) as handle:
        handle.write("\n".join(lines.tolist()))
        handle.write("\n")


def generate_tad(scale: float, seed: int, class_names: list[str]) -> tuple[dict, dict, int, int]:
    """~10k GT segments over ~5k videos (200 classes) and ~40 predictions per video (~200k), deterministic."""
    rng = np.random.default_rng(seed + 1)
    n_videos = max(2, int(round(5000 * scale)))
    names = np.asarray(class_names)
    durations = np.round(rng.uniform(30, 240, n_videos), 2)
    video_class = rng.integers(0, names.size, n_videos)
    n_seg = 1 + np.minimum(rng.poisson(1.0, n_videos), 5)
    database, results = {}, {}
    n_gt = n_pred = 0
    for v in range(n_videos):  # generation only (not timed); ~5k iterations
        vid = f"vid{v:06d}"
        dur = float(durations[v])
        centers = rng.uniform(0.1, 0.9, n_seg[v]) * dur
        lengths = rng.uniform(0.05, 0.4, n_seg[v]) * dur
        segs = np.stack([np.clip(centers - lengths / 2, 0, dur), np.clip(centers + lengths / 2, 0, dur)], axis=1)
        label = str(names[video_class[v]])
        database[vid] = {"subset": "validation", "duration": dur,
                         "annotations": [{"segment": [float(a), float(b)], "label": label} for a, b in segs]}
        n_gt += len(segs)
        n_p = 40
        base = segs[rng.integers(0, len(segs), n_p)]
        noise = rng.normal(0, 0.08 * dur, (n_p, 2))
        random_seg = np.sort(rng.uniform(0, dur, (n_p, 2)), axis=1)
        from_gt = rng.random(n_p) < 0.6
        p_seg = np.where(from_gt[:, None], np.sort(base + noise * 0.3, axis=1), random_seg)
        p_seg = np.clip(p_seg, 0, dur)
        p_label = np.where(rng.random(n_p) < 0.7, label, names[rng.integers(0, names.size, n_p)])
        p_score = np.round(rng.random(n_p), 6)
        results[vid] = [{"label": str(lb), "score": float(s), "segment": [float(a), float(b)]}
                        for lb, s, (a, b) in zip(p_label, p_score, p_seg)]
        n_pred += n_p
    gt_json = {"version": "VERSION 1.3", "taxonomy": [], "database": database}
    pred_json = {"version": "VERSION 1.3", "results": results, "external_data": {}}
    return gt_json, pred_json, n_gt, n_pred


# ------------------------------------------------------------------------------------------------ measuring


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"


def peak_rss_mb() -> float:
    """High-water resident memory of this process (VmHWM; ru_maxrss on Linux carries the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def traced(fn, *args, **kwargs):
    """(result, peak MB of Python/NumPy allocations made during the call)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return result, peak


def measure_child(kind: str, gt: str, det: str, extra: str) -> None:
    """Child-process body: parse, evaluate, print one JSON line with seconds and peak RSS."""
    from seal_transfer.data.formats.ava import read_ava_csv, read_labelmap

    t0 = time.perf_counter()
    if kind.startswith("ava"):
        from seal_transfer.evaluation.frame_map import frame_map

        labelmap = read_labelmap(extra)
        gt_table = read_ava_csv(gt, "gt", warn=False)
        t_gt = time.perf_counter()
        det_table = read_ava_csv(det, "detections", warn=False)
        t1 = time.perf_counter()
        protocol = kind.split(":")[1]
        result = frame_map(gt_table, det_table, labelmap.ids, protocol=protocol)
        t2 = time.perf_counter()
        _, eval_peak = traced(frame_map, gt_table, det_table, labelmap.ids, protocol=protocol)
        out = {"parse_gt": t_gt - t0, "parse_det": t1 - t_gt, "value": result.mAP,
               "rows_gt": len(gt_table), "rows_det": len(det_table), "keyframes": result.num_keyframes}
    else:
        from seal_transfer.data.formats.activitynet import read_activitynet_gt, read_activitynet_predictions
        from seal_transfer.evaluation.temporal_map import average_map

        gt_segs, _ = read_activitynet_gt(gt, "validation")
        preds = read_activitynet_predictions(det)
        t1 = time.perf_counter()
        result = average_map(gt_segs, preds)
        t2 = time.perf_counter()
        _, eval_peak = traced(average_map, gt_segs, preds)
        out = {"value": result.average_mAP, "rows_gt": len(gt_segs), "rows_det": len(preds)}
    out.update({"parse": t1 - t0, "evaluate": t2 - t1, "peak_rss_mb": peak_rss_mb(), "eval_peak_mb": eval_peak})
    print(json.dumps(out))


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"child failed: {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


CLI_WRAPPER = (
    "import atexit, sys\n"
    "def report():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('VMHWM_KB', line.split()[1], file=sys.stderr)\n"
    "atexit.register(report)\n"
    "from seal_transfer.evaluate import cli\n"
    "cli(sys.argv[1:])\n"
)


def time_cli_once(argv: list[str]) -> dict:
    """Wall and CPU (user + sys) seconds and peak RSS (MB) of the evaluate CLI as a user runs it (interpreter
    start included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLI_WRAPPER, *argv], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"CLI failed: {proc.stderr}")
    peak = [float(line.split()[1]) / 1024.0 for line in proc.stderr.splitlines() if line.startswith("VMHWM_KB")]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak": peak[0] if peak else float("nan"),
            "result": proc.stdout.strip().splitlines()[-1],
            "warnings": [line for line in proc.stderr.splitlines() if line.startswith("warning:")]}


def time_cli(argv: list[str], repeats: int) -> dict:
    """`repeats` CLI runs: median wall and CPU, every run's wall, the largest peak RSS."""
    runs = [time_cli_once(argv) for _ in range(max(1, repeats))]
    results = {r["result"] for r in runs}
    if len(results) != 1:
        raise SystemExit(f"CLI results differ between runs: {results}")
    return {"wall": float(np.median([r["wall"] for r in runs])), "cpu": float(np.median([r["cpu"] for r in runs])),
            "walls": [r["wall"] for r in runs], "peak": max(r["peak"] for r in runs), "result": runs[0]["result"],
            "warnings": runs[0]["warnings"]}


def issue13_scenario(work: Path, ava: dict, seed: int) -> tuple[Path, Path]:
    """The benchmark's files plus what issue 13 describes: 500 excluded keyframes, 8 detection rows y2 < y1."""
    rng = np.random.default_rng(seed + 13)
    det = dict(ava["det"])
    box = det["box"].copy()
    rows = rng.choice(np.flatnonzero(box[:, 1] >= 0.01), size=min(N_INVERTED, box.shape[0]), replace=False)
    box[rows, 3] = np.round(box[rows, 1] - 0.001, 3)  # y2 < y1 by 0.001
    det["box"] = box
    det_csv = work / "bench_det_issue13.csv"
    write_ava_csv_fast(det_csv, det, "score")
    keys = sorted({(v, float(t)) for v, t in zip(ava["gt"]["video"].tolist(), ava["gt"]["ts"].tolist())})
    picked = rng.choice(len(keys), size=min(N_EXCLUDED, len(keys)), replace=False)
    excl_csv = work / "bench_excluded.csv"
    with atomic_write(excl_csv) as handle:
        handle.write("".join(f"{keys[i][0]},{int(keys[i][1]):04d}\n" for i in sorted(picked)))
    return det_csv, excl_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full input size (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the generated inputs (default: a temporary directory)")
    parser.add_argument("--out", default=str(REPO / "results" / "bench_eval.md"), help="markdown report ('' = none)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per evaluator (best and median reported)")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "GT", "DET", "EXTRA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure_child(*args.child)
        return
    tmp = tempfile.TemporaryDirectory() if not args.workdir else None
    work = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ava = generate_ava(args.scale, args.seed)
    gt_csv, det_csv = work / "bench_gt.csv", work / "bench_det.csv"
    write_ava_csv_fast(gt_csv, ava["gt"], "person")
    write_ava_csv_fast(det_csv, ava["det"], "score")
    classes = [f"class_{i:03d}" for i in range(200)]
    gt_json, pred_json, n_gt_seg, n_pred = generate_tad(args.scale, args.seed, classes)
    gt_path, pred_path = work / "bench_tad_gt.json", work / "bench_tad_pred.json"
    write_json(gt_path, gt_json)
    write_json(pred_path, pred_json)
    det13_csv, excl_csv = issue13_scenario(work, ava, args.seed)
    gen_s = time.perf_counter() - t0
    print(f"generated inputs in {gen_s:.1f} s under {work}", file=sys.stderr)

    load_start = os.getloadavg()
    rows: list[tuple[str, dict]] = []
    for kind, g, d, extra in (("ava:2020", gt_csv, det_csv, LABELMAP), ("ava:2019", gt_csv, det_csv, LABELMAP),
                              ("tad", gt_path, pred_path, "-")):
        runs = [run_child([kind, str(g), str(d), str(extra)]) for _ in range(max(1, args.repeats))]
        best = min(runs, key=lambda r: r["parse"] + r["evaluate"])
        summary = dict(best)
        summary["evaluate_median"] = float(np.median([r["evaluate"] for r in runs]))
        summary["parse_median"] = float(np.median([r["parse"] for r in runs]))
        summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        summary["eval_peak_mb"] = max(r["eval_peak_mb"] for r in runs)
        rows.append((kind, summary))
        print(f"{kind}: parse {summary['parse']:.2f} s, evaluate {summary['evaluate']:.2f} s, "
              f"peak RSS {summary['peak_rss_mb']:.0f} MB (evaluate {summary['eval_peak_mb']:.0f} MB), "
              f"value {summary['value']:.6f}", file=sys.stderr)
    cli_ava = time_cli(["ava", str(gt_csv), str(det_csv), "--labelmap", str(LABELMAP)], args.repeats)
    cli_13 = time_cli(["ava", str(gt_csv), str(det13_csv), "--labelmap", str(LABELMAP), "--exclusions",
                       str(excl_csv)], args.repeats)
    cli_tad = time_cli(["tad", str(gt_path), str(pred_path)], args.repeats)
    for name, c in (("ava", cli_ava), ("ava issue-13 scenario", cli_13), ("tad", cli_tad)):
        print(f"CLI {name}: median wall {c['wall']:.2f} s (runs {', '.join(f'{w:.2f}' for w in c['walls'])}), "
              f"CPU {c['cpu']:.2f} s, {c['peak']:.0f} MB ({c['result']})", file=sys.stderr)
    load_end = os.getloadavg()

    if args.out:
        import numpy

        buf = io.StringIO()
        command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]])
        buf.write("# Evaluation benchmark\n\n")
        buf.write(f"Command: `{command}` (from the repository root)\n\n")
        buf.write(f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
                  f"NumPy {numpy.__version__}, pyarrow {_version('pyarrow')}. Load average (1, 5, 15 min) at the start "
                  f"of the timed runs: {', '.join(f'{x:.1f}' for x in load_start)}; at the end: "
                  f"{', '.join(f'{x:.1f}' for x in load_end)} (the benchmark itself accounts for about 1; more "
                  f"means other jobs shared the cores, and wall times are then longer than on an idle machine).\n\n")
        a = ava["gt"]["label"].size, ava["det"]["label"].size
        buf.write(f"AVA input (seed {args.seed}, scale {args.scale}): {N_VIDEOS} videos x "
                  f"{ava['num_keyframes'] // N_VIDEOS} keyframes = {ava['num_keyframes']} keyframes, {a[0]} GT rows "
                  f"(80 classes, scored on the 60-class label map), {a[1]} detection rows.\n")
        buf.write(f"TAD input: {n_gt_seg} GT segments, {n_pred} predictions, 200 classes, tIoU 0.5:0.05:0.95.\n\n")
        buf.write(f"Each row: best of {max(1, args.repeats)} fresh child processes (median in brackets); parse = "
                  "reading the files with `seal_transfer.data.formats` (ava.py / activitynet.py), evaluate = "
                  "`frame_map` / `average_map` on the parsed arrays. Peak RSS = VmHWM of the child (interpreter, "
                  "NumPy, parsing and evaluation together); evaluate peak = tracemalloc peak of the evaluation call "
                  "alone (NumPy arrays it allocates, in a separate traced run).\n\n")
        buf.write("| evaluator | parse (s) | evaluate (s) | total (s) | peak RSS (MB) | evaluate peak (MB) "
                  "| result |\n")
        buf.write("|---|---|---|---|---|---|---|\n")
        for kind, s in rows:
            label = {"ava:2020": "AVA frame-mAP, protocol 2020", "ava:2019": "AVA frame-mAP, protocol 2019",
                     "tad": "TAD average-mAP"}[kind]
            buf.write(f"| {label} | {s['parse']:.2f} ({s['parse_median']:.2f}) | {s['evaluate']:.2f} "
                      f"({s['evaluate_median']:.2f}) | {s['parse'] + s['evaluate']:.2f} | {s['peak_rss_mb']:.0f} | "
                      f"{s['eval_peak_mb']:.0f} | {s['value']:.6f} |\n")
        for kind, s in rows:
            if kind.startswith("ava"):
                buf.write(f"\nAVA parse split ({kind}): GT {s['parse_gt']:.2f} s, detections {s['parse_det']:.2f} s.")
                break
        buf.write(f"\n\nEnd-to-end CLI (`python -m seal_transfer.evaluate ...`, including interpreter start and "
                  f"imports, default protocol 2020), {max(1, args.repeats)} runs each: median wall, median CPU "
                  "(user + sys, all threads), largest peak RSS.\n\n")
        buf.write("| CLI run | wall (s) | runs (s) | CPU (s) | peak RSS (MB) | result |\n|---|---|---|---|---|---|\n")
        for name, c in (("`ava GT DET --labelmap L`", cli_ava),
                        (f"`ava GT DET' --labelmap L --exclusions E` (issue 13: {N_EXCLUDED} excluded keyframes, "
                         f"{N_INVERTED} detection rows with y2 < y1)", cli_13),
                        ("`tad GT PRED`", cli_tad)):
            buf.write(f"| {name} | {c['wall']:.2f} | {', '.join(f'{w:.2f}' for w in c['walls'])} | {c['cpu']:.2f} | "
                      f"{c['peak']:.0f} | {c['result']} |\n")
        if cli_13["warnings"]:
            warning = cli_13["warnings"][0].replace(str(work), "WORK")
            buf.write(f"\nThe issue-13 run's warning (stderr): `{warning}`\n")
        buf.write("\n")
        buf.write(OFFICIAL_NOTE + "\n")
        with atomic_write(args.out) as handle:
            handle.write(buf.getvalue())
        print(f"wrote {args.out}", file=sys.stderr)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
