"""Where the kept pseudo labels go wrong, per selection rule and round (SYNTHETIC worlds: needs the hidden truth).

Reads finished adapt run directories (each round's `pseudo_labels.csv`) and the world's hidden source-space truth,
and sorts every kept (box, class) label with `seal_transfer.pseudo.labeler.label_error_breakdown`: true and the
box's only action; true but the box does a second action no label names; true with every action labelled; on a
box with no source action at all; or a class the box does not do. Runs made from this commit on carry the same
breakdown in each round's `stats.json` (`kept_label_breakdown`); this script covers the runs made before, from
their run directories, so it works only where those directories still exist.

    python scripts/analyse_pseudo_labels.py    # Table 5 (world 0) + the choose world (world 1): .md and .png
    python scripts/analyse_pseudo_labels.py --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from seal_transfer.data.formats.ava import AvaTable, read_ava_csv
from seal_transfer.experiment import mean_std
from seal_transfer.pseudo.labeler import LABEL_OUTCOMES, label_error_breakdown, truth_for_boxes
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
OUTCOME_HEADERS = {"true_only_action": "true, only action", "true_other_action_unlabelled": "true, 2nd action unnamed",
                   "true_all_labelled": "true, all actions named", "no_action_box": "box without action",
                   "wrong_class": "wrong class"}


def world_truth(cache: Path, world: int, preset: str) -> AvaTable:
    """The hidden source-space truth of every target pool a round can label (train and unlabeled)."""
    folder = cache / f"{preset}-seed{world}-v2" / "hidden_truth"
    tables = [read_ava_csv(p, "gt", warn=False) for p in sorted(folder.glob("ava_*_source_labels.csv"))
              if "_val_" not in p.name]
    if not tables:
        raise SystemExit(f"{folder}: no hidden truth (generate the world first: any stage on it does)")
    return AvaTable.concat(tables)


def round_breakdown(csv_path: Path, truth: AvaTable) -> dict[str, int]:
    """One round's kept labels, grouped per box (a box may carry several rows), sorted against the truth."""
    rows = read_ava_csv(csv_path, "pseudo", warn=False)
    per_box: dict[tuple, set[int]] = defaultdict(set)
    first: dict[tuple, int] = {}
    for i, key in enumerate(zip(rows.video_ids.tolist(), rows.timestamps.tolist(),
                                map(tuple, np.round(rows.boxes.astype(np.float64), 4).tolist()))):
        per_box[key].add(int(rows.action_ids[i]))
        first.setdefault(key, i)
    keys = list(per_box)
    boxes = rows.select(np.asarray([first[k] for k in keys], dtype=np.int64))
    return label_error_breakdown([per_box[k] for k in keys], truth_for_boxes(boxes, truth))


def collect(pattern: str, truth: AvaTable, setting_of) -> dict[tuple[str, int], list[dict[str, int]]]:
    out: dict[tuple[str, int], list[dict[str, int]]] = defaultdict(list)
    for csv_path in sorted(ROOT.glob(pattern)):
        setting = setting_of(csv_path)
        if setting is None:
            continue
        rnd = int(csv_path.parent.name.split("_")[1])
        out[(setting, rnd)].append(round_breakdown(csv_path, truth))
    return out


def table(title: str, found: dict[tuple[str, int], list[dict[str, int]]]) -> list[str]:
    lines = [f"## {title}", "", "Share of kept labels (mean ± std over seeds):", "",
             "| setting | round | seeds | labels kept (mean) | " + " | ".join(OUTCOME_HEADERS.values()) + " |",
             "|---|---|---|---|" + "---|" * len(OUTCOME_HEADERS)]
    for (setting, rnd), runs in sorted(found.items()):
        totals = [sum(b.values()) for b in runs]
        cells = []
        for k in LABEL_OUTCOMES:
            m, s = mean_std([b[k] / t for b, t in zip(runs, totals) if t])
            cells.append(f"{m:.2f} ± {s:.2f}")
        mean_kept = sum(totals) / len(totals)
        lines.append(f"| {setting} | {rnd} | {len(runs)} | {mean_kept:.0f} | " + " | ".join(cells) + " |")
    return lines + [""]


def draw_figure(sections: list[tuple[str, dict[tuple[str, int], list[dict[str, int]]]]], out_png: Path) -> None:
    """One panel per world: a stacked bar per (setting, round) of the mean share of each outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seal_transfer.report.plots import save_figure

    shown = [(title, found) for title, found in sections if found]
    heights = [max(2.0, 0.28 * len(found) + 1.0) for _, found in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colours = ("#2e7d32", "#81c784", "#1565c0", "#ffb300", "#c62828")
    for ax, (title, found) in zip(axes[:, 0], shown):
        keys = sorted(found)
        left = np.zeros(len(keys))
        for outcome, colour in zip(LABEL_OUTCOMES, colours):
            share = np.array([np.mean([b[outcome] / max(sum(b.values()), 1) for b in found[k]]) for k in keys])
            ax.barh(range(len(keys)), share, left=left, color=colour, label=OUTCOME_HEADERS[outcome])
            left += share
        ax.set_yticks(range(len(keys)), [f"{setting} · round {rnd}" for setting, rnd in keys], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="share of kept (box, class) labels", title=f"SYNTHETIC: {title}")
    axes[0, 0].legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table5-runs", default="runs/table5/w0", help="Table 5's run directories (world 0)")
    ap.add_argument("--choose-runs", default="runs/selection_rules/w1", help="the selection-rule choose world (1)")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "seal_transfer"), help="generated worlds")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--out", default="results/pseudo_label_errors.md")
    args = ap.parse_args()
    cache = Path(args.cache)

    def t5_setting(p: Path) -> Any:  # .../s<seed>/adapt_<labels>_l<λ>_v2/adapt/round_k/pseudo_labels.csv
        m = re.fullmatch(r"adapt_(rule|random)_l([\d.]+)_v2", p.parents[2].name)
        return None if m is None else ("paper rule" if m[1] == "rule" else "random labels") + f", λ_c {m[2]}"

    def choose_setting(p: Path) -> Any:
        name = p.parents[2].name.removeprefix("adapt_")
        return "paper rule, λ_c 0.3" if name == "rule_l0.3_v2" else name

    sections = [("World 0 (Table 5's adapt rows, plan version 2)",
                 collect(f"{args.table5_runs}/s*/adapt_*_v2/adapt/round_*/pseudo_labels.csv",
                         world_truth(cache, 0, args.preset), t5_setting)),
                ("World 1 (the selection-rule choose world)",
                 collect(f"{args.choose_runs}/s*/adapt_*/adapt/round_*/pseudo_labels.csv",
                         world_truth(cache, 1, args.preset), choose_setting))]
    if not any(found for _, found in sections):
        raise SystemExit(f"no adapt run directories under {args.table5_runs} or {args.choose_runs}")
    out = ROOT / args.out
    lines = ["# Where the pseudo labels go wrong (SYNTHETIC worlds)", "", f"![pseudo-label errors]({out.stem}.png)", "",
             "Written by `python scripts/analyse_pseudo_labels.py` from the adapt run directories that existed when it "
             "ran (run directories are not committed; runs from commit 'kept_label_breakdown' on carry the same "
             "numbers in their records). Every kept (box, class) label is one of: true and the box's only source "
             "action; true, but the box also does an action no kept label names; true, with all the box's actions "
             "named; on a box with no source action (e.g. standing still); a class the box does not do. The first "
             "three add up to the pseudo-label precision.", ""]
    for title, found in sections:
        lines += table(title, found) if found else [f"## {title}", "", "(no run directories found)", ""]
    with atomic_write(out) as handle:
        handle.write("\n".join(lines))
    draw_figure(sections, out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
