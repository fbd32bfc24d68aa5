"""The alternating schedule of §5.1: round r pseudo-labels the target with the current model, then trains on the
kept samples. Each round's folder is a checkpoint of the whole procedure, so an interrupted run continues from
the last finished step (labels written → training resumes from last.ckpt → next round)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seal_transfer.data.datamodules import KeyframeSplit, make_keyframe_split
from seal_transfer.data.domains import (
    DomainSplit,
    hidden_truth,
    load_source_split,
    load_target_split,
    source_labelmap,
)
from seal_transfer.data.formats.ava import AvaTable, LabelMap, read_ava_csv, write_ava_csv
from seal_transfer.engine.detection import DetectionModule
from seal_transfer.engine.ema import EmaWeights
from seal_transfer.engine.fit import export_state
from seal_transfer.engine.supervised import (
    DetectionJob,
    data_problems,
    model_config_for,
    pose_columns,
    run_detection_job,
)
from seal_transfer.errors import UserError
from seal_transfer.models.checkpoints import checkpoint_class_names, load_weights, stored_description_of
from seal_transfer.models.config import clip_spec
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.distributed import (
    barrier,
    ensure_process_group,
    labelling_device,
    score_two_views_distributed,
)
from seal_transfer.pseudo.labeler import (
    TwoViewScores,
    coverage_from_counts,
    label_rows,
    oracle_selection,
    pool_truths,
    pseudo_label_rows,
    random_selection,
    score_two_views,
    selection_stats,
    uncertain_classes,
)
from seal_transfer.pseudo.rules import build_rule
from seal_transfer.rundir import (
    IGNORED_LABELS,
    METRICS,
    PSEUDO_LABELS,
    ROUND_STATS,
    TEACHER,
    WEIGHTS,
    adapt_round_dir,
    is_finished,
)
from seal_transfer.utils.dist import is_rank_zero
from seal_transfer.utils.fileio import atomic_path, write_json


def _target_pool(cfg: Any, acfg: AdaptConfig) -> list[tuple[str, DomainSplit]]:
    """Target splits to pseudo-label; their labels (if any) are never read — only boxes and videos."""
    pools: list[tuple[str, DomainSplit]] = []
    if acfg.pool in ("train", "train+unlabeled"):
        pools.append(("train", load_target_split(cfg, "train")))
    if acfg.pool in ("unlabeled", "train+unlabeled"):
        split = load_target_split(cfg, "unlabeled")
        split.table = split.table.select(split.table.scores >= acfg.detector_threshold)
        pools.append(("unlabeled", split))
    return pools


def _labelling_split(cfg: Any, split: DomainSplit, what: str, round_index: int) -> KeyframeSplit:
    """A pool's two-view dataset with round `round_index`'s views: they differ per round, so the dataset's epoch
    slot carries the round number into the view seeds."""
    labelling = make_keyframe_split(cfg, split, clip=clip_spec(cfg.model), train=True, labelled=False, views=2,
                                    what=what)
    labelling.dataset.set_epoch(10_000 + round_index)
    return labelling


@dataclass
class PoolScores:
    """One target pool as a round's selection rule sees it."""

    name: str
    split: KeyframeSplit
    scores: TwoViewScores
    truths: Optional[list[set[int]]]  # each box's hidden true source classes (synthetic worlds only)


def score_target_pools(cfg: Any, weights: Path, round_index: int = 1) -> list[PoolScores]:
    """The two-view scores of every target pool box under the labeller `weights`, with round `round_index`'s
    views — exactly what `label_round` hands the rule — in one process. Rules that differ only in how they select
    can then be compared offline on one scoring pass (`scripts/analyse_labeller_ceiling.py`)."""
    source_classes = source_labelmap(cfg)
    check_source_label_space(weights, source_classes, bool(cfg.allow_pickle_checkpoints))
    module = _build_scorer(cfg, source_classes, weights)
    out: list[PoolScores] = []
    for name, split in _target_pool(cfg, cfg.adapt):
        labelling = _labelling_split(cfg, split, f"target {name} (pseudo-labelling)", round_index)
        scores = score_two_views(module, labelling, batch_size=int(cfg.adapt.label_batch_size or cfg.data.batch_size),
                                 num_workers=int(cfg.data.num_workers), progress=bool(cfg.trainer.enable_progress_bar))
        truth = hidden_truth(cfg, name)
        out.append(PoolScores(name, labelling, scores, pool_truths(labelling, scores, truth) if truth is not None
                              else None))
    return out


def check_source_label_space(weights: Path, labelmap: LabelMap, allow_pickle: bool = False) -> None:
    """The model's output columns must be the source label map's classes in its order. A checkpoint that records
    its class names (every model.pt a stage exports) is compared name by name: an equal count can still be
    another label space. A foreign file records none; then only its head's shape is checked (`_build_scorer`)."""
    names = checkpoint_class_names(weights, allow_pickle=allow_pickle)
    expected = [labelmap.names[c] for c in labelmap.ids]
    if names is None or names == expected:
        return
    column = next((i for i, (a, b) in enumerate(zip(names, expected)) if a != b), None)
    detail = (
        f"column {column} is '{names[column]}' there and '{expected[column]}' here"
        if column is not None
        else f"{len(names)} classes there, {len(expected)} here"
    )
    raise UserError(
        f"{weights}: was trained on other classes than the source label map {labelmap.source or ''} ({detail}); "
        "adapt needs the label map the model was pretrained with (data.source.root, data.source.labelmap)"
    )


def _build_scorer(cfg: Any, source_labelmap: LabelMap, weights: Path) -> DetectionModule:
    module = DetectionModule(
        model_cfg=model_config_for(cfg, weights, "adapt"),
        optim_cfg=asdict(cfg.optim),
        num_classes=len(source_labelmap),
        pose_columns=pose_columns(source_labelmap, cfg.optim.pose_label_type),
        class_ids=source_labelmap.ids,
    )
    report = load_weights(module.model, weights, allow_pickle=bool(cfg.allow_pickle_checkpoints))
    if not report.head_loaded:
        raise UserError(
            f"{weights}: its classifier head does not fit the {len(source_labelmap)} source classes; "
            "adaptation needs a model pretrained on the source label space"
        )
    return module


def round_selection(cfg: Any, scores: TwoViewScores, round_index: int, state: Optional[dict[str, Any]],
                    truths: Optional[list[set[int]]], source_labelmap: LabelMap, rule: Optional[Any] = None
                    ) -> tuple[Any, dict[str, Any]]:
    """What round `round_index` keeps from a pool's scores: the `adapt.selection` rule (`state`: what it carried from
    the previous round), then the `adapt.labels` source (oracle: the hidden truth; random: seeded per seed and
    round). The one place the stage and offline analyses (`scripts/analyse_labeller_ceiling.py`) select."""
    acfg = cfg.adapt
    selection, rule_state = (rule or build_rule(acfg))(torch.from_numpy(scores.view1), torch.from_numpy(scores.view2),
                                                       round_index, state)
    if acfg.labels == "oracle":
        assert truths is not None  # checked at the stage entry (require_hidden_truth)
        selection = oracle_selection(selection, truths, source_labelmap)
    elif acfg.labels == "random":
        selection = random_selection(selection, np.random.default_rng([int(cfg.seed), round_index, 11]))
    return selection, rule_state


def label_round(
    cfg: Any, acfg: AdaptConfig, round_dir: Path, round_index: int, weights: Path, source_labelmap: LabelMap
) -> dict[str, Any]:
    """Step 1-2 of a round: two-view scores for every pool sample → keep/drop → pseudo_labels.csv + stats.json.

    Under torchrun/SLURM every rank scores a shard; rank 0 merges and writes (see pseudo/distributed.py).
    """
    accelerator = str(cfg.trainer.accelerator)
    rank, world = ensure_process_group(accelerator)
    barrier()  # every rank starts from the weights the previous round's rank 0 exported
    device = labelling_device(accelerator)
    module = _build_scorer(cfg, source_labelmap, weights).to(device)
    rows: list[AvaTable] = []
    ignored: list[AvaTable] = []  # adapt.negatives=confident only
    stats: dict[str, Any] = {
        "round": round_index,
        "weights": str(weights),
        "lambda_c": acfg.lambda_c,
        "score_views": acfg.score_views,
        "multi_label": acfg.multi_label,
        "labels": acfg.labels,
        "selection": acfg.selection,
        "require_agreement": acfg.require_agreement,
        "teacher": acfg.teacher,
        "negatives": acfg.negatives,
        "rule_state": {},  # per pool: what the rule carries to the next round (debiased: the class marginal)
        "pools": {},
    }
    rule = build_rule(acfg)
    previous_state = _previous_rule_state(round_dir, round_index)
    for name, split in _target_pool(cfg, acfg):
        labelling = _labelling_split(cfg, split, f"target {name} (pseudo-labelling)", round_index)
        scores = score_two_views_distributed(
            module,
            labelling,
            batch_size=int(acfg.label_batch_size or cfg.data.batch_size),
            num_workers=int(cfg.data.num_workers),
            shard_dir=round_dir / "label_shards" / name,
            device=device,
            progress=bool(cfg.trainer.enable_progress_bar),  # the trainer's bar setting covers labelling too
        )
        if scores is None:  # not rank 0: its shard is written, rank 0 merges
            continue
        truth = hidden_truth(cfg, name)
        truths = pool_truths(labelling, scores, truth) if truth is not None else None
        selection, rule_state = round_selection(cfg, scores, round_index, previous_state.get(name), truths,
                                                source_labelmap, rule)
        stats["rule_state"][name] = rule_state
        rows.append(pseudo_label_rows(labelling, scores, selection, source_labelmap))
        stats["pools"][name] = selection_stats(labelling, scores, selection, source_labelmap, truth, truths)
        if acfg.negatives == "confident":
            unsure = uncertain_classes(scores, selection, acfg.negative_threshold)
            ignored.append(label_rows(labelling, scores, unsure, source_labelmap))
            stats["pools"][name]["ignored_labels"] = int(unsure.sum())
        stats["pools"][name].update(data_problems([labelling]))
    if rank != 0:
        barrier()  # rank 0 has written stats.json and pseudo_labels.csv
        return json.loads((round_dir / ROUND_STATS).read_text())
    table = AvaTable.concat(rows) if rows else AvaTable.empty()
    pools = stats["pools"].values()
    seen = sum(p["samples_seen"] for p in pools)
    kept = sum(p["kept"] for p in pools)
    stats.update(
        {
            "samples_seen": seen,
            "kept": kept,
            "kept_fraction": kept / seen if seen else 0.0,
            "pseudo_label_rows": len(table),
            "labelling_skipped_keyframes": sum(p.get("skipped_keyframes", 0) for p in pools),
            "labelling_broken_videos": sorted({v for p in pools for v in p.get("broken_videos", [])}),
        }
    )
    precisions = [
        (p["pseudo_label_precision"], p["kept"]) for p in pools if p.get("pseudo_label_precision") is not None
    ]
    if precisions:
        stats["pseudo_label_precision"] = sum(p * k for p, k in precisions) / max(sum(k for _, k in precisions), 1)
    stats.update(_merged_diagnostics(list(pools), source_labelmap))
    stats["world_size"] = world
    if acfg.negatives == "confident":
        stats["ignored_labels"] = sum(p["ignored_labels"] for p in pools)
        write_ava_csv(round_dir / IGNORED_LABELS, AvaTable.concat(ignored) if ignored else AvaTable.empty(), "pseudo")
    write_json(round_dir / ROUND_STATS, stats)
    write_ava_csv(round_dir / PSEUDO_LABELS, table, "pseudo")  # written last: marks labelling done
    if world > 1:
        barrier()
        shutil.rmtree(round_dir / "label_shards", ignore_errors=True)
    return stats


def _previous_rule_state(round_dir: Path, round_index: int) -> dict[str, Any]:
    """The previous round's `rule_state` per pool (from its stats.json, so a resumed run carries the same)."""
    if round_index <= 1:
        return {}
    previous = adapt_round_dir(round_dir.parent, round_index - 1) / ROUND_STATS
    if not previous.is_file():
        return {}
    return json.loads(previous.read_text()).get("rule_state") or {}


def _merged_diagnostics(pools: list[dict[str, Any]], source_labelmap: LabelMap) -> dict[str, Any]:
    """Round-level class coverage and truth diagnostics over all pools (per-pool values stay under `pools`)."""
    counts: dict[str, int] = {}
    truth_counts: dict[str, int] = {}
    for p in pools:
        for c, k in p["per_class_counts"].items():
            counts[c] = counts.get(c, 0) + k
        for c, k in (p.get("truth_class_counts") or {}).items():
            truth_counts[c] = truth_counts.get(c, 0) + k
    out = coverage_from_counts(counts, len(source_labelmap))
    breakdowns = [p["kept_label_breakdown"] for p in pools if "kept_label_breakdown" in p]
    if breakdowns:
        out["kept_label_breakdown"] = {k: sum(b[k] for b in breakdowns) for k in breakdowns[0]}
    with_truth = sum(p.get("boxes_with_truth", 0) for p in pools)
    if with_truth:
        out["boxes_with_truth"] = with_truth
        out["argmax_precision"] = sum(p["argmax_precision"] * p["boxes_with_truth"] for p in pools
                                      if p.get("boxes_with_truth")) / with_truth
        majority = max(sorted(truth_counts), key=lambda c: truth_counts[c])
        out["majority_class"] = int(majority)
        out["majority_class_frequency"] = truth_counts[majority] / with_truth
        out["truth_classes"] = len(truth_counts)
        out["kept_truth_class_coverage"] = len(set(counts) & set(truth_counts)) / len(truth_counts)
    return out


def require_hidden_truth(cfg: Any) -> None:
    """`adapt.labels=oracle|random` read the synthetic world's hidden truth: refuse before any work without it."""
    acfg = cfg.adapt
    if acfg.labels == "rule":
        return
    for name, _ in _target_pool(cfg, acfg):
        if hidden_truth(cfg, name) is None:
            raise UserError(
                f"adapt.labels={acfg.labels} needs the hidden true source labels of the target pool '{name}', which "
                "only the synthetic world has (hidden_truth/); use adapt.labels=rule on real data"
            )


def _ignored_labels(round_dir: Path) -> AvaTable:
    """The round's left-out (box, class) pairs; a round labelled under adapt.negatives=all has none to read."""
    path = round_dir / IGNORED_LABELS
    if not path.is_file():
        raise UserError(f"{path}: missing; round {round_dir.name} was pseudo-labelled with adapt.negatives=all, so "
                        "its uncertain classes were not recorded (rerun the stage with force=true)")
    return read_ava_csv(path, "pseudo")


def _mixed_training_split(
    cfg: Any, acfg: AdaptConfig, pseudo: AvaTable, source_labelmap: LabelMap, round_index: int,
    ignored: Optional[AvaTable] = None,
) -> KeyframeSplit:
    """Training set of a round: kept target samples (+ optionally a random draw of source keyframes); `ignored`:
    (box, class) pairs of the kept samples the loss leaves out (source keyframes have none)."""
    pools = {name: split for name, split in _target_pool(cfg, acfg)}
    video_paths: dict[str, Path] = {}
    timings: dict[str, Any] = {}
    for split in pools.values():
        video_paths.update(split.video_paths)
        timings.update(split.timings)
    table = pseudo
    if acfg.source_mix_ratio > 0:
        source = load_source_split(cfg, "train", dense=False)
        clash = set(source.video_paths) & set(video_paths)
        if clash:
            raise UserError(f"adapt.source_mix_ratio: source and target share video ids ({sorted(clash)[:3]}...)")
        keys = sorted({(v, t) for v, t in zip(source.table.video_ids.tolist(), source.table.timestamps.tolist())})
        n_target = len({(v, t) for v, t in zip(pseudo.video_ids.tolist(), pseudo.timestamps.tolist())})
        rng = np.random.default_rng([int(cfg.seed), round_index, 7])
        take = min(len(keys), int(round(acfg.source_mix_ratio * n_target)))
        chosen = {keys[i] for i in rng.choice(len(keys), size=take, replace=False)} if take else set()
        mask = np.array(
            [(v, t) in chosen for v, t in zip(source.table.video_ids.tolist(), source.table.timestamps.tolist())],
            dtype=bool,
        )
        table = AvaTable.concat([pseudo, source.table.select(mask)])
        video_paths.update(source.video_paths)
        timings.update(source.timings)
    used = set(table.video_ids.tolist())
    split = DomainSplit(table, source_labelmap, {v: timings[v] for v in used}, {v: video_paths[v] for v in used},
                        ignored=ignored)
    return make_keyframe_split(cfg, split, clip=clip_spec(cfg.model), train=True,
                               what=f"adapt round {round_index} training set")


def run_adaptation(cfg: Any, out_dir: Path, init: Path, origin: str) -> dict[str, Any]:
    """Rounds 1..R; returns the stage metrics. `RUN/adapt/model.pt` is the last round's weights."""
    acfg = cfg.adapt
    source_classes = source_labelmap(cfg)
    check_source_label_space(init, source_classes, bool(cfg.allow_pickle_checkpoints))
    weights = init  # the student: what each round trains from
    labeller = init  # what labels the next round: the student (teacher=current) or its EMA (teacher=ema)
    summary: list[dict[str, Any]] = []
    for r in range(1, acfg.rounds + 1):
        round_dir = adapt_round_dir(out_dir, r)
        round_dir.mkdir(parents=True, exist_ok=True)
        if is_finished(round_dir):
            print(f"[adapt] round {r}: already finished, reusing {round_dir}")
            summary.append(json.loads((round_dir / METRICS).read_text()))
            weights = round_dir / WEIGHTS
            labeller = round_dir / TEACHER if acfg.teacher == "ema" else weights
            continue
        start_weights = init if acfg.restart_each_round else weights
        if not (round_dir / PSEUDO_LABELS).exists():
            print(f"[adapt] round {r}/{acfg.rounds}: pseudo-labelling with {labeller if r > 1 else origin}"
                  + (" (the EMA teacher)" if acfg.teacher == "ema" and r > 1 else "")
                  + (f"; training restarts from {init}" if acfg.restart_each_round and r > 1 else ""))
            stats = label_round(cfg, acfg, round_dir, r, labeller, source_classes)
        else:
            print(f"[adapt] round {r}: pseudo labels already written, reusing {round_dir / 'pseudo_labels.csv'}")
            stats = json.loads((round_dir / ROUND_STATS).read_text())
        print(
            f"[adapt] round {r}: kept {stats['kept']}/{stats['samples_seen']} boxes "
            f"({stats['kept_fraction']:.1%})"
            + (
                f", precision {stats['pseudo_label_precision']:.3f}"
                if stats.get("pseudo_label_precision") is not None
                else ""
            )
        )
        pseudo = read_ava_csv(round_dir / PSEUDO_LABELS, "pseudo")
        round_metrics: dict[str, Any] = {"round": r, **{k: v for k, v in stats.items() if k != "pools"}}
        ema = (EmaWeights(acfg.ema_momentum, start=_build_scorer(cfg, source_classes, labeller).model.state_dict())
               if acfg.teacher == "ema" else None)
        if len(pseudo) == 0:
            print(f"[adapt] round {r}: nothing kept at lambda_c={acfg.lambda_c}; weights carried over unchanged")
            with atomic_path(round_dir / WEIGHTS) as tmp:
                shutil.copyfile(start_weights, tmp)
            round_metrics["trained"] = False
        else:
            ignored = _ignored_labels(round_dir) if acfg.negatives == "confident" else None
            try:
                train = _mixed_training_split(cfg, acfg, pseudo, source_classes, r, ignored)
            except ValueError as err:  # only a hand-edited ignored_labels.csv can disagree with the labels
                raise UserError(f"{round_dir / IGNORED_LABELS}: {err}") from None
            round_cfg = replace(cfg, trainer=replace(cfg.trainer, max_epochs=acfg.epochs_per_round))
            job = DetectionJob(
                f"adapt round {r}",
                round_dir,
                train,
                None,
                source_classes,
                [],
                init=start_weights,
                meta={"domain": "target (pseudo labels, source label space)", "round": r},
                loss_weight=acfg.loss_weight,
                callbacks=[ema] if ema is not None else [],
            )
            round_metrics.update(run_detection_job(round_cfg, job))
            round_metrics["trained"] = True
        if ema is not None:
            if is_rank_zero():
                meta = {**stored_description_of(round_dir / WEIGHTS), "teacher": "ema",
                        "ema_momentum": acfg.ema_momentum, "ema_updates": ema.updates}
                assert ema.average is not None
                export_state(ema.average, round_dir / TEACHER, meta)
            round_metrics["ema_updates"] = ema.updates
        write_json(round_dir / METRICS, round_metrics)
        summary.append(round_metrics)
        weights = round_dir / WEIGHTS
        labeller = round_dir / TEACHER if ema is not None else weights
    with atomic_path(out_dir / WEIGHTS) as tmp:
        shutil.copyfile(weights, tmp)
    last = summary[-1]

    def names(key: str) -> set[str]:  # rounds written before broken_videos held names held a count
        value = last.get(key, [])
        return set(value) if isinstance(value, list) else set()

    return {
        "stage": "adapt",
        "rounds": acfg.rounds,
        "lambda_c": acfg.lambda_c,
        "selection": acfg.selection,
        "teacher": acfg.teacher,
        "loss_weight": acfg.loss_weight,
        "kept_fraction": last.get("kept_fraction"),
        "pseudo_label_precision": last.get("pseudo_label_precision"),
        # Every round labels the same pools: the last round's counts stand for the stage.
        "skipped_keyframes": int(last.get("labelling_skipped_keyframes", 0)) + int(last.get("skipped_keyframes", 0)),
        "broken_videos": sorted(names("labelling_broken_videos") | names("broken_videos")),
        "per_round": summary,
        "init_from": origin,
    }
