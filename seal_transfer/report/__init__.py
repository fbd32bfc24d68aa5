"""Figures and reports from run directories: per-class AP, PR curves, training curves, pseudo-label rounds and
the λ_c sweep (matplotlib Agg, PNG, atomic writes). `stage_plots(stage_dir)` is what a finished stage calls."""

from seal_transfer.report.plots import (
    plot_lambda_sweep,
    plot_per_class_ap,
    plot_pr_curves,
    plot_pseudo_label_stats,
    plot_training_curves,
    read_metrics_csv,
)
from seal_transfer.report.run_report import build_report, draw_stage, read_sweep_rows, stage_plots

__all__ = [
    "build_report",
    "draw_stage",
    "plot_lambda_sweep",
    "plot_per_class_ap",
    "plot_pr_curves",
    "plot_pseudo_label_stats",
    "plot_training_curves",
    "read_metrics_csv",
    "read_sweep_rows",
    "stage_plots",
]
