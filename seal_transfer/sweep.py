"""`python -m seal_transfer.sweep sweep.key=adapt.lambda_c sweep.values=[0.1,0.3,0.5]`: adapt (+ finetune) once
per value of any config key, all from the same pretrain run, then a table and plots of what the value changed.

Each value gets its own run dir `RUN/sweep/<key>=<value>/` whose adapt stage starts from `RUN/pretrain/model.pt`
(pretrain is run first if missing), so the values differ in that key alone. Finished values are reused when the
sweep is re-run, like every stage.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.config.loader import with_overrides
from seal_transfer.errors import UserError
from seal_transfer.rundir import METRICS, WEIGHTS, is_finished, stage_dir
from seal_transfer.utils.fileio import atomic_write, write_json

SECTIONS = ("run_dir", "seed", "sweep", "adapt", "data", "model", "optim", "trainer")
DESCRIPTION = "Sweep one config key (default adapt.lambda_c) over values: adapt + finetune per value, one table."


def _slug(key: str, value: Any) -> str:
    return f"{key}={value}".replace("/", "_")


def _is_key(cfg: Any, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = getattr(node, part)
    return True


def _value_config(cfg: Any, value: Any) -> Any:
    """The run config of one value: its own run dir, the swept key set (typed and checked like an override)."""
    run_dir = Path(cfg.run_dir) / "sweep" / _slug(cfg.sweep.key, value)
    return with_overrides(cfg, {"run_dir": str(run_dir), "init": None, cfg.sweep.key: value})


def _run_value(child: Any, value: Any, pretrain: Path) -> dict[str, Any]:
    from seal_transfer.adapt import adapt
    from seal_transfer.finetune import finetune

    run_dir = Path(child.run_dir)
    # adapt starts from the shared pretrain weights; finetune then follows the run dir's chain (→ adapt).
    adapt(with_overrides(child, {"init": str(pretrain)}))
    row: dict[str, Any] = {"value": value, "run_dir": str(run_dir)}
    adapt_metrics = json.loads((stage_dir(run_dir, "adapt") / METRICS).read_text())
    row["kept_fraction"] = adapt_metrics.get("kept_fraction")
    row["pseudo_label_precision"] = adapt_metrics.get("pseudo_label_precision")
    row["per_round"] = [
        {k: r.get(k) for k in ("round", "kept", "samples_seen", "kept_fraction", "pseudo_label_precision")}
        for r in adapt_metrics.get("per_round", [])
    ]
    if row["per_round"]:
        row["round1_kept_fraction"] = row["per_round"][0].get("kept_fraction")
    if child.sweep.finetune:
        finetune(child)
        row["mAP"] = json.loads((stage_dir(run_dir, "finetune") / METRICS).read_text()).get("mAP")
    return row


def write_sweep_table(rows: list[dict[str, Any]], key: str, out_md: Path, note: str, command: str = "") -> None:
    """One row per value: every round's kept boxes and pseudo-label precision, then the finetuned frame-mAP."""
    def fmt(v: Any) -> str:
        return "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    def rounds(row: dict[str, Any], field: str) -> str:
        cells = []
        for r in row.get("per_round", []):
            if field == "kept":
                cells.append(f"{r.get('kept')}/{r.get('samples_seen')}")
            else:
                cells.append(fmt(r.get(field)))
        return ", ".join(cells) or "—"

    lines = [f"# Sweep of `{key}`", "", note, ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [
        f"| {key} | kept per round | pseudo-label precision per round | finetune frame-mAP@0.5 |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['value']} | {rounds(row, 'kept')} | {rounds(row, 'pseudo_label_precision')} | "
                     f"{fmt(row.get('mAP'))} |")
    empty = [str(r["value"]) for r in rows if r.get("per_round") and not any(p.get("kept") for p in r["per_round"])]
    if empty:
        lines += ["", f"No box passed the rule at {key} = {', '.join(empty)}: adaptation left the pretrained weights "
                  "unchanged, so those rows are the pretrain → finetune baseline without adaptation."]
    with atomic_write(out_md) as handle:
        handle.write("\n".join(lines) + "\n")


def sweep(cfg: Any) -> int:
    from seal_transfer.pretrain import pretrain

    values = list(cfg.sweep.values)
    if not values:
        raise UserError("config key 'sweep.values' is empty; give a list, e.g. sweep.values=[0.1,0.3,0.5]")
    if not _is_key(cfg, cfg.sweep.key):
        raise UserError(f"config key 'sweep.key': '{cfg.sweep.key}' is not a config key")
    if cfg.sweep.key.split(".")[0] in ("run_dir", "init", "sweep"):
        raise UserError(f"config key 'sweep.key': '{cfg.sweep.key}' cannot be swept")
    try:  # every value is checked before any work, as the command line's own keys are
        children = [_value_config(cfg, value) for value in values]
    except UserError as exc:
        raise UserError(f"config key 'sweep.key': {exc}") from None
    started = time.time()
    pre_dir = stage_dir(cfg.run_dir, "pretrain")
    if not is_finished(pre_dir):
        print(f"[sweep] no finished pretrain in {pre_dir}: running it first")
        pretrain(cfg)
    rows = []
    for i, value in enumerate(values, start=1):
        print(f"\n[sweep] {cfg.sweep.key}={value} ({i}/{len(values)})")
        rows.append(_run_value(children[i - 1], value, pre_dir / WEIGHTS))
    out = Path(cfg.sweep.out)
    note = cfg.sweep.note or (
        f"Run dir `{cfg.run_dir}`; every value starts from the same `{pre_dir / 'model.pt'}`. "
        f"Wall time {time.time() - started:.0f} s."
    )
    write_json(out.with_suffix(".json"), {"key": cfg.sweep.key, "rows": rows})
    launched = Path(sys.argv[0]).name == "sweep.py"  # not when called in-process (tests, notebooks)
    command = "python -m seal_transfer.sweep " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if launched else ""
    write_sweep_table(rows, cfg.sweep.key, out.with_suffix(".md"), note, command)
    try:
        from seal_transfer.report import plot_lambda_sweep

        numeric = [{**r, "lambda_c": r["value"]} for r in rows if isinstance(r["value"], (int, float))]
        if numeric:
            plot_lambda_sweep(numeric, out.with_suffix(".png"), title=f"Sweep of {cfg.sweep.key}")
    except ImportError:
        print("[sweep] plotting unavailable (seal_transfer.report missing); table written")
    print(f"\n== sweep finished: {out.with_suffix('.md')}")
    for row in rows:
        print(f"   {cfg.sweep.key}={row['value']}: kept {row.get('kept_fraction')}, "
              f"precision {row.get('pseudo_label_precision')}, mAP {row.get('mAP')}")
    return 0


main = stage_main("seal_transfer.sweep", DESCRIPTION, SECTIONS, sweep)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
