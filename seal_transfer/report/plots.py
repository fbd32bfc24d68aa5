"""Figures people would rather look at than read: per-class AP, PR curves, training curves, pseudo-label rounds,
the λ_c sweep. Pure functions from plain data to a PNG, drawn on matplotlib's Agg canvas (no display, no global
pyplot state, safe in DDP workers and tests); every PNG is written atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from seal_transfer.evaluation.pr import PRCurve
from seal_transfer.utils.fileio import atomic_path

# Colour-blind-safe palette (Okabe-Ito), cycled for groups and series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DPI = 110


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig: Any, out_png: str | Path, dpi: int = DPI) -> Path:
    """Write a figure as PNG atomically (a reader never sees half a file); also what the experiment scripts use."""
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out


def _finite(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _short(name: str, width: int = 38) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# --------------------------------------------------------------------------------------------- per-class AP


def plot_per_class_ap(
    per_class: Mapping[Any, Any],
    out_png: str | Path,
    *,
    class_names: Optional[Mapping[int, str]] = None,
    groups: Optional[Mapping[str, Sequence[int]]] = None,
    title: str = "Per-class AP",
    mean_label: str = "mAP",
) -> Path:
    """Horizontal bars of AP per class, best first; classes without GT (None/NaN) are listed as 'no GT'.

    `groups` (name → class ids, e.g. Table 3's frequency buckets or AVA's label types) colours each bar by the
    first group that holds the class, and the legend gives each group's mean AP (its classes with an AP).
    """
    values = {int(k): _finite(v) for k, v in per_class.items()}
    names = {int(k): str(v) for k, v in (class_names or {}).items()}
    scored = sorted((c for c, v in values.items() if v is not None), key=lambda c: (-values[c], c))  # type: ignore[operator]
    missing = sorted(c for c, v in values.items() if v is None)
    order = scored + missing
    group_of: dict[int, str] = {}
    # Nested groups (top50 inside top150): a class takes the colour of the smallest group that holds it.
    group_names = sorted(groups or {}, key=lambda g: len((groups or {})[g]))
    for name in group_names:
        for cid in (groups or {})[name]:
            group_of.setdefault(int(cid), name)
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(group_names)}
    default_colour = PALETTE[0] if not group_names else "#999999"

    n = max(len(order), 1)
    fig = _figure(8.0, 1.2 + 0.19 * n)
    ax = fig.add_subplot()
    y = np.arange(len(order))
    heights = [values[c] or 0.0 for c in order]
    colours = [colour.get(group_of.get(c, ""), default_colour) for c in order]
    ax.barh(y, heights, color=colours, height=0.75)
    labels = [f"{_short(names.get(c, str(c)))} ({c})" for c in order]
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    for yi, c in zip(y, order):
        text = "no GT" if values[c] is None else f"{values[c]:.2f}"
        ax.text((values[c] or 0.0) + 0.01, yi, text, va="center", fontsize=6, color="#333333")
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("AP@0.5")
    scored_values = [values[c] for c in scored]
    if scored_values:
        mean = float(np.mean(scored_values))
        ax.axvline(mean, color="#444444", linestyle="--", linewidth=1)
        title = f"{title} — {mean_label} {mean:.3f} over {len(scored_values)} classes"
    ax.set_title(title, fontsize=10)
    if group_names:
        from matplotlib.patches import Patch

        handles = []
        for name in group_names:
            members = [values[int(c)] for c in (groups or {})[name] if values.get(int(c)) is not None]
            mean_text = f"{np.mean(members):.3f}" if members else "n/a"
            handles.append(Patch(color=colour[name], label=f"{name}: mAP {mean_text} ({len(members)} cls)"))
        ax.legend(handles=handles, loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out_png)


# --------------------------------------------------------------------------------------------- PR curves


def plot_pr_curves(
    curves: Sequence[PRCurve], out_png: str | Path, *, class_names: Optional[Mapping[int, str]] = None,
    title: str = "Precision-recall (IoU 0.5)",
) -> Path:
    """One PR curve per class (the interpolated envelope, whose area is the AP), AP in the legend."""
    names = {int(k): str(v) for k, v in (class_names or {}).items()}
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    for i, curve in enumerate(curves):
        label = f"{_short(names.get(curve.class_id, str(curve.class_id)), 28)}: AP "
        label += "n/a" if not math.isfinite(curve.ap) else f"{curve.ap:.3f}"
        label += f" ({curve.num_gt} GT)"
        colour = PALETTE[i % len(PALETTE)]
        if curve.recall.size:
            # The VOC envelope at each recall step: the area under this staircase is the AP.
            envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
            steps = curve.recall != np.r_[0.0, curve.recall[:-1]]
            recall, level = curve.recall[steps], envelope[steps]
            if recall.size:
                ax.step(np.r_[0.0, recall], np.r_[level[0], level], where="pre", color=colour, label=label)
            else:
                ax.plot([], [], color=colour, label=label)
            ax.plot(curve.recall, curve.precision, color=colour, alpha=0.25, linewidth=0.8)
        else:
            ax.plot([], [], color=colour, label=label + " — no detections")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, out_png)


# --------------------------------------------------------------------------------------------- training curves


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float, float]]]:
    """Lightning CSVLogger `metrics.csv` → {metric: [(step, epoch, value), ...]} (empty cells skipped)."""
    series: dict[str, list[tuple[float, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            step = _finite(row.get("step"))
            epoch = _finite(row.get("epoch"))
            for key, raw in row.items():
                if key in ("step", "epoch") or raw in (None, ""):
                    continue
                value = _finite(raw)
                if value is not None:
                    series.setdefault(key, []).append((step or 0.0, epoch or 0.0, value))
    return series


def plot_training_curves(
    logs: Sequence[tuple[str, str | Path]] | str | Path, out_png: str | Path, *, title: str = "Training"
) -> Path:
    """Training loss (per logged step, with a running mean) and every `val/*` metric per epoch.

    `logs`: one metrics.csv, or (label, metrics.csv) pairs laid end to end (adaptation rounds), separated by
    dotted lines.
    """
    parts = [("", logs)] if isinstance(logs, (str, Path)) else list(logs)
    loaded = [(label, read_metrics_csv(path)) for label, path in parts]
    has_val = any(k.startswith("val/") for _, series in loaded for k in series)
    fig = _figure(10.0 if has_val else 6.0, 3.8)
    axes = fig.subplots(1, 2) if has_val else [fig.subplots(1, 1)]
    ax_loss = axes[0]
    offset_step, offset_epoch = 0.0, 0.0
    val_colour: dict[str, str] = {}
    for label, series in loaded:
        loss = series.get("train/loss", [])
        last_step = max((s for s, _, _ in loss), default=0.0)
        last_epoch = 0.0
        if loss:
            steps = np.asarray([s for s, _, _ in loss]) + offset_step
            values = np.asarray([v for _, _, v in loss])
            ax_loss.plot(steps, values, color=PALETTE[0], alpha=0.35, linewidth=0.8)
            window = max(1, len(values) // 10)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax_loss.plot(steps[window - 1:], smooth, color=PALETTE[0], linewidth=1.6)
        for key in sorted(k for k in series if k.startswith("val/")):
            points = series[key]
            first_time = key not in val_colour
            colour = val_colour.setdefault(key, PALETTE[len(val_colour) % len(PALETTE)])
            epochs = np.asarray([e for _, e, _ in points]) + offset_epoch + 1
            last_epoch = max(last_epoch, float(epochs.max() - offset_epoch))
            axes[1].plot(epochs, [v for _, _, v in points], marker="o", color=colour,
                         label=key[4:] if first_time else None)
        if label:
            ax_loss.axvline(offset_step, color="#888888", linestyle=":", linewidth=1)
            ax_loss.text(offset_step, 1.0, f" {label}", transform=ax_loss.get_xaxis_transform(), fontsize=7,
                         va="top")
        offset_step += last_step + 1
        offset_epoch += max(last_epoch, 1.0)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss")
    ax_loss.set_title(f"{title}: training loss (thin: logged, thick: running mean)", fontsize=9)
    ax_loss.grid(alpha=0.3)
    if has_val:
        ax_val = axes[1]
        ax_val.set_xlabel("epoch (the last point is the final validation)")
        ax_val.set_title(f"{title}: validation", fontsize=9)
        ax_val.grid(alpha=0.3)
        ax_val.legend(fontsize=7)
        ax_val.set_ylim(0, 1.02)
    return save_figure(fig, out_png)


# --------------------------------------------------------------------------------------------- pseudo labels

PSEUDO_RATES = ("kept_fraction", "view_agreement_rate", "confident_fraction", "pseudo_label_precision")


def _round_rate(stats: Mapping[str, Any], key: str) -> Optional[float]:
    """A round's rate: the top-level value, else the kept-weighted mean over its pools (stats.json layout)."""
    value = _finite(stats.get(key))
    if value is not None:
        return value
    pools = [p for p in (stats.get("pools") or {}).values() if _finite(p.get(key)) is not None]
    if not pools:
        return None
    weights = np.asarray([max(float(p.get("samples_seen", 1)), 1.0) for p in pools])
    return float(np.average([float(p[key]) for p in pools], weights=weights))


def plot_pseudo_label_stats(
    rounds: Sequence[Mapping[str, Any]], out_png: str | Path, *, class_names: Optional[Mapping[int, str]] = None,
    max_classes: int = 20,
) -> Path:
    """Per adaptation round: kept fraction, view agreement, confident fraction, pseudo-label precision (left);
    kept pseudo labels per class, the most frequent classes (right). `rounds`: the rounds' stats.json dicts."""
    names = {int(k): str(v) for k, v in (class_names or {}).items()}
    fig = _figure(11.0, 4.2)
    ax_rate, ax_cls = fig.subplots(1, 2, width_ratios=[1, 1.6])
    labels = [f"round {s.get('round', i + 1)}" for i, s in enumerate(rounds)]
    x = np.arange(len(rounds))
    width = 0.8 / len(PSEUDO_RATES)
    for j, key in enumerate(PSEUDO_RATES):
        values = [_round_rate(s, key) for s in rounds]
        xs = x + (j - (len(PSEUDO_RATES) - 1) / 2) * width
        bars = ax_rate.bar(xs, [v if v is not None else 0.0 for v in values], width, color=PALETTE[j],
                           label=key.replace("_", " "))
        for bar, v in zip(bars, values):
            ax_rate.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01,
                         "n/a" if v is None else f"{v:.2f}", ha="center", fontsize=6)
    ax_rate.set_xticks(x, labels)
    ax_rate.set_ylim(0, 1.4)
    ax_rate.set_yticks(np.linspace(0, 1, 6))
    ax_rate.set_title("pseudo-labelling per round", fontsize=9)
    ax_rate.legend(fontsize=7, loc="upper center", ncols=2)
    ax_rate.grid(axis="y", alpha=0.3)

    counts: list[dict[int, int]] = []
    for s in rounds:
        merged: dict[int, int] = {}
        for pool in (s.get("pools") or {}).values():
            for cid, n in (pool.get("per_class_counts") or {}).items():
                merged[int(cid)] = merged.get(int(cid), 0) + int(n)
        counts.append(merged)
    totals: dict[int, int] = {}
    for merged in counts:
        for cid, n in merged.items():
            totals[cid] = totals.get(cid, 0) + n
    classes = sorted(totals, key=lambda c: (-totals[c], c))[:max_classes]
    if classes:
        cx = np.arange(len(classes))
        bar_w = 0.8 / max(len(rounds), 1)
        for i, merged in enumerate(counts):
            ax_cls.bar(cx + (i - (len(rounds) - 1) / 2) * bar_w, [merged.get(c, 0) for c in classes], bar_w,
                       color=PALETTE[i % len(PALETTE)], label=labels[i])
        ax_cls.set_xticks(cx, [_short(names.get(c, str(c)), 18) for c in classes], rotation=60, ha="right",
                          fontsize=7)
        ax_cls.legend(fontsize=7)
    else:
        ax_cls.text(0.5, 0.5, "no pseudo labels kept", ha="center", va="center", transform=ax_cls.transAxes)
    ax_cls.set_ylabel("kept (box, class) labels")
    ax_cls.set_title("kept pseudo labels per class", fontsize=9)
    ax_cls.grid(axis="y", alpha=0.3)
    return save_figure(fig, out_png)


# --------------------------------------------------------------------------------------------- λ_c sweep

SWEEP_RATE_KEYS = ("round1_kept_fraction", "kept_fraction", "pseudo_label_precision")
SWEEP_RATE_LABELS = {"round1_kept_fraction": "kept fraction, round 1", "kept_fraction": "kept fraction, last round",
                     "pseudo_label_precision": "pseudo-label precision, last round"}


def _sweep_x(row: Mapping[str, Any]) -> Any:
    return row.get("lambda_c", row.get("value"))


def plot_lambda_sweep(rows: Sequence[Mapping[str, Any]], out_png: str | Path, *, key: str = "adapt.lambda_c",
                      metric: str = "mAP", title: Optional[str] = None) -> Path:
    """The λ_c ablation (or a sweep of any key): `metric` (target frame-mAP after finetuning) per value, with the
    kept fraction and pseudo-label precision of the labelling on a second axis where the rows carry them.

    `rows`: one mapping per value, the value under `lambda_c` or `value` (the sweep CLI's rows), plus `metric`
    and optionally `kept_fraction`, `pseudo_label_precision`; values may be None/NaN (a run that kept nothing).
    Numeric values are drawn on a numeric axis in sorted order; other values (e.g. adapt.score_views) in row order.
    """
    usable = [r for r in rows if _sweep_x(r) is not None]
    numeric = all(_finite(_sweep_x(r)) is not None for r in usable)
    if numeric:
        usable.sort(key=lambda r: float(_sweep_x(r)))
        xs = np.asarray([float(_sweep_x(r)) for r in usable])
    else:
        xs = np.arange(len(usable), dtype=np.float64)
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    values = np.asarray([np.nan if _finite(r.get(metric)) is None else _finite(r.get(metric)) for r in usable],
                        dtype=np.float64)
    ax.plot(xs, values, marker="o", color=PALETTE[0], linewidth=2, label=metric)
    for x, v in zip(xs, values):
        if np.isfinite(v):
            ax.annotate(f"{v:.3f}", (x, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    short = key.rsplit(".", 1)[-1]
    if np.isfinite(values).any():
        best = int(np.nanargmax(values))
        ax.scatter([xs[best]], [values[best]], s=120, facecolors="none", edgecolors=PALETTE[3], zorder=3,
                   label=f"best {short} = {_sweep_x(usable[best])}")
    if not numeric:
        ax.set_xticks(xs, [str(_sweep_x(r)) for r in usable])
    is_lambda = short == "lambda_c"
    ax.set_xlabel("λ_c (keep a box iff max class score > λ_c and both views agree)" if is_lambda else key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    extra = [k for k in SWEEP_RATE_KEYS if any(_finite(r.get(k)) is not None for r in usable)]
    if extra:
        twin = ax.twinx()
        for j, name in enumerate(extra):
            vals = [_finite(r.get(name)) for r in usable]
            twin.plot(xs, [np.nan if v is None else v for v in vals], marker="s", linestyle="--",
                      color=PALETTE[(j + 1) % len(PALETTE)], label=SWEEP_RATE_LABELS[name])
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("fraction")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=3)  # never over the curves
    ax.set_title(title or ("Credible threshold λ_c sweep" if is_lambda else f"Sweep of {key}"), fontsize=10)
    return save_figure(fig, out_png)
