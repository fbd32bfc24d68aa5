"""The toolkit's config schema: one structured dataclass tree shared by every stage.

Each module owns the dataclass of its own knobs (model, augmentation, clips, synthetic world, adaptation…);
this file only composes them, adds data locations and the Lightning Trainer pass-through, and checks the
values omegaconf's type system cannot (choices, ranges). Paper defaults wherever the paper names one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from seal_transfer.data.clips import ClipConfig
from seal_transfer.data.synthetic import SynthConfig
from seal_transfer.data.transforms import AugmentConfig
from seal_transfer.engine.tubes import TubesConfig
from seal_transfer.errors import UserError
from seal_transfer.evaluation.clip_map import BucketConfig
from seal_transfer.models.slowfast import ModelConfig
from seal_transfer.pseudo.selection import AdaptConfig


@dataclass
class SourceDataConfig:
    """SEAL (source domain). With `root` unset the synthetic world's SEAL part is used."""

    root: Optional[str] = None  # folder holding the SEAL files below; null = built-in synthetic world
    labelmap: str = "seal_atomic_actions.pbtxt"  # 172 atomic classes, AVA 'label' layout
    video_dir: str = "videos"  # {video_id}.mp4/.mkv/.webm, relative to root
    train_tubes: Optional[str] = "seal_tubes_train.json"  # SEAL Tubes JSON (+ _boxes.npz beside it); null = none
    val_tubes: Optional[str] = "seal_tubes_val.json"
    train_clips: Optional[str] = None  # SEAL Clips CSV (+ _boxes.npz beside it) read as given; mixed with the tubes
    val_clips: Optional[str] = None
    clips: ClipConfig = field(default_factory=ClipConfig)


@dataclass
class TargetDataConfig:
    """AVA (target domain), real file names by default. With `root` unset the synthetic world's AVA part is used."""

    root: Optional[str] = None  # AVA folder; null = built-in synthetic world
    video_dir: str = "videos"  # cut movies {video_id}.mp4/.mkv/.webm (frame 0 = movie second time_offset)
    frame_dir: Optional[str] = None  # PySlowFast frame folders instead of videos
    train_gt: str = "annotations/ava_train_v2.2.csv"
    val_gt: str = "annotations/ava_val_v2.2.csv"
    labelmap: str = "annotations/ava_action_list_v2.2.pbtxt"  # training classes (80 on AVA)
    eval_labelmap: str = "annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt"  # evaluated classes, or all
    exclusions: Optional[str] = "annotations/ava_val_excluded_timestamps_v2.2.csv"  # must exist; null = none
    val_boxes: Optional[str] = None  # person-detector boxes for validation (PySlowFast CSV or .pkl); null = GT boxes
    val_box_threshold: float = 0.8  # detector-score threshold for val boxes (PySlowFast AVA default)
    unlabeled_boxes: Optional[str] = "annotations/ava_unlabeled_predicted_boxes.csv"  # extra pool for adaptation
    trust_pickle: bool = False  # allow .pkl proposal files (a pickle can run code)
    video_meta: Optional[str] = "annotations/video_meta.csv"  # per-video fps/time_offset/keyframes; missing = defaults
    fps: float = 30.0  # default when video_meta lacks a video (AVA: 30)
    time_offset: float = 900.0  # movie second of frame 0 in a cut file (AVA: 900)
    first_keyframe: float = 902.0
    last_keyframe: float = 1798.0
    label_fraction: float = 1.0  # finetune on this fraction of the train VIDEOS (seeded, nested); 1.0 = all
    label_subset_seed: Optional[int] = None  # seed of the labelled-video subset; null = the run's seed


@dataclass
class GenericDataConfig:
    """Clip-classification set standing in for Kinetics (whole-clip labels, no boxes)."""

    root: Optional[str] = None  # folder with generic_{train,val}.csv and videos; null = synthetic world
    train_list: str = "generic_train.csv"
    val_list: str = "generic_val.csv"
    classes: str = "generic_classes.txt"


@dataclass
class DataConfig:
    cache_dir: str = "~/.cache/seal_transfer"  # where the synthetic world is generated on first use
    synthetic: SynthConfig = field(default_factory=SynthConfig)
    source: SourceDataConfig = field(default_factory=SourceDataConfig)
    target: TargetDataConfig = field(default_factory=TargetDataConfig)
    generic: GenericDataConfig = field(default_factory=GenericDataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 8  # clips per device per step
    num_workers: int = 2  # DataLoader workers per device
    max_broken_fraction: float = 0.01  # stop if more than this fraction of videos, or of keyframes, is unusable
    preload: bool = False  # decode every needed frame once before training and keep it in memory (small data)
    preload_max_gb: float = 4.0  # preload only if the decoded frames of a split fit in this many GB


@dataclass
class OptimConfig:
    """PySlowFast AVA recipe: SGD, linear warm-up then cosine; AdamW optional."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # base learning rate (PySlowFast AVA: 0.1 for batch 64)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-7  # PySlowFast AVA: 1e-7
    warmup_epochs: float = 1.0
    warmup_start_lr: float = 0.001
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of lr
    loss: str = "bce"  # bce (multi-label sigmoid) | bce_softmax_pose (softmax over the pose classes, sigmoid else)
    pose_label_type: str = "PERSON_MOVEMENT"  # label_type whose classes are mutually exclusive (AVA) ; SEAL: POSE


@dataclass
class TrainerConfig:
    """Passed to lightning.Trainer as keyword arguments."""

    accelerator: str = "auto"
    devices: str = "auto"  # 'auto', a count ('2') or a list ('[0,1]')
    num_nodes: int = 1
    strategy: str = "auto"  # e.g. ddp, ddp_find_unused_parameters_true
    precision: str = "32-true"  # e.g. bf16-mixed, 16-mixed
    max_epochs: int = 10
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    num_sanity_val_steps: int = 0


@dataclass
class SweepConfig:
    """`python -m seal_transfer.sweep`: one key, several values, adapt (+ finetune) each from the same pretrain."""

    key: str = "adapt.lambda_c"  # any config key
    values: list[Any] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9])
    finetune: bool = True  # also finetune each adapted model and report frame-mAP
    out: str = "results/lambda_sweep"  # writes <out>.md, <out>.json, <out>.png
    note: str = ""  # free text for the table's header (e.g. 'SYNTHETIC, small preset')


@dataclass
class Config:
    run_dir: str = "runs/default"  # stages write RUN/<stage>/ and read earlier stages from here
    init: Optional[str] = None  # weights to start from (overrides the run-dir chain)
    seed: int = 0
    force: bool = False  # redo a stage that already finished
    task: str = "detection"  # pretrain: detection (SEAL Clips) | classification (generic clips)
    allow_pickle_checkpoints: bool = False  # load legacy pickled checkpoints (runs code: only trusted files)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    buckets: BucketConfig = field(default_factory=BucketConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    tubes: TubesConfig = field(default_factory=TubesConfig)


CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("detection", "classification"),
    "optim.name": ("sgd", "adamw"),
    "optim.loss": ("bce", "bce_softmax_pose"),
}


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: Any) -> None:
    """Checks beyond types: choices and ranges, each failing with the key's name."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"config key '{missing[0]}' must be set (the config marks it ???), e.g. {missing[0]}=PATH")
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise UserError(f"config key '{key}': '{value}' is not one of {', '.join(allowed)}")
    positive = ["optim.lr", "data.batch_size", "trainer.max_epochs", "data.target.fps", "data.preload_max_gb"]
    for key in positive:
        if _get(cfg, key) <= 0:
            raise UserError(f"config key '{key}': must be > 0, got {_get(cfg, key)}")
    AdaptConfig(**OmegaConf.to_container(cfg.adapt, resolve=True)).validate()
    if not 0 < cfg.data.target.label_fraction <= 1:
        raise UserError(
            f"config key 'data.target.label_fraction': must be in (0, 1], got {cfg.data.target.label_fraction}"
        )
    if not 0 <= cfg.data.max_broken_fraction <= 1:
        raise UserError(f"config key 'data.max_broken_fraction': must be in [0, 1], got {cfg.data.max_broken_fraction}")
    if not 0 <= cfg.data.target.val_box_threshold <= 1:
        raise UserError(
            f"config key 'data.target.val_box_threshold': must be in [0, 1], got {cfg.data.target.val_box_threshold}"
        )
