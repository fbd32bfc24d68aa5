"""The data layer's config sections (torch-free, so `--help` and config checks never import torch).

`data.*`: where SEAL / AVA / the generic clips live, how SEAL Clips are cut from SEAL Tubes (`ClipConfig`), clip
augmentation (`AugmentConfig`), loader settings, and the synthetic world (`data.synthetic`, its own module).
Each section's `validate(key)` checks what omegaconf's types cannot, naming the full key; the config loader calls
it for every section when a stage starts, before any lock or write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from seal_transfer.data.synthetic.config import SynthConfig
from seal_transfer.errors import UserError

_DENSITY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*fps\s*$")

ASSIGN_RULES = ("overlap", "keyframe", "both", "either")


@dataclass
class ClipConfig:
    """How SEAL Clips are cut from SEAL Tubes (see the module docstring for each rule)."""

    window: float = 2.0
    stride: float = 1.0
    box_density: str = "4fps"  # "1fps" | "4fps" | "all" (any "{r}fps" works)
    assign_rule: str = "overlap"  # "overlap" | "keyframe" | "both" | "either"
    min_overlap: float = 0.5  # seconds, for the "overlap" part of a rule
    keep_unlabeled: bool = True

    def validate(self, key: str = "clips") -> None:
        if not (self.window > 0 and self.stride > 0):
            raise UserError(f"{key}.window and {key}.stride must be positive, got {self.window}, {self.stride}")
        if self.assign_rule not in ASSIGN_RULES:
            raise UserError(f"{key}.assign_rule: '{self.assign_rule}' is not one of {', '.join(ASSIGN_RULES)}")
        if not 0 <= self.min_overlap <= self.window:
            raise UserError(f"{key}.min_overlap: {self.min_overlap} must lie in [0, window={self.window}]")
        self.density_rate(key)

    def density_rate(self, key: str = "clips") -> float | None:
        """Boxes per second kept inside a clip; None means every annotated frame."""
        if self.box_density.strip().lower() == "all":
            return None
        match = _DENSITY_RE.match(self.box_density.lower())
        if not match or float(match.group(1)) <= 0:
            raise UserError(f"{key}.box_density: '{self.box_density}' is not 'all' or '<rate>fps' (e.g. '4fps')")
        return float(match.group(1))


@dataclass
class AugmentConfig:
    """Clip augmentation knobs; defaults follow PySlowFast's AVA recipe (scale jitter [256, 320], crop 224)."""

    min_short_side: int = 256
    max_short_side: int = 320
    crop_size: int = 224
    flip_prob: float = 0.5
    color_jitter: float = 0.4  # brightness/contrast/saturation strength; 0 disables
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    eval_short_side: int = 256
    # Frames reach the transform at up to 2.5x the needed size (datasets.KeyframeDataset.FULL_SIZE_RATIO).
    antialias: bool = True  # antialiased resize; on uint8 frames it costs about the same as plain bilinear

    def validate(self, key: str = "augment") -> None:
        """Reject settings that would make the crop impossible or the normalisation meaningless."""
        if not 0 < self.min_short_side <= self.max_short_side:
            raise UserError(
                f"{key}.min_short_side/max_short_side: need 0 < min <= max, got "
                f"{self.min_short_side}, {self.max_short_side}"
            )
        if not 0 < self.crop_size <= self.min_short_side:
            raise UserError(
                f"{key}.crop_size: must be in (0, min_short_side={self.min_short_side}], got {self.crop_size}"
            )
        if self.eval_short_side <= 0:
            raise UserError(f"{key}.eval_short_side: must be positive, got {self.eval_short_side}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise UserError(f"{key}.flip_prob: must be in [0, 1], got {self.flip_prob}")
        if self.color_jitter < 0:
            raise UserError(f"{key}.color_jitter: must be >= 0, got {self.color_jitter}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise UserError(f"{key}.mean/std: need 3 values each, got {list(self.mean)}, {list(self.std)}")
        if any(s <= 0 for s in self.std):
            raise UserError(f"{key}.std: values must be positive, got {list(self.std)}")


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

    def validate(self, key: str = "data.target") -> None:
        if self.fps <= 0:
            raise UserError(f"config key '{key}.fps': must be > 0, got {self.fps}")
        if not 0 < self.label_fraction <= 1:
            raise UserError(f"config key '{key}.label_fraction': must be in (0, 1], got {self.label_fraction}")
        if not 0 <= self.val_box_threshold <= 1:
            raise UserError(f"config key '{key}.val_box_threshold': must be in [0, 1], got {self.val_box_threshold}")


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

    def validate(self, key: str = "data") -> None:
        for name in ("batch_size", "preload_max_gb"):
            if getattr(self, name) <= 0:
                raise UserError(f"config key '{key}.{name}': must be > 0, got {getattr(self, name)}")
        if not 0 <= self.max_broken_fraction <= 1:
            raise UserError(
                f"config key '{key}.max_broken_fraction': must be in [0, 1], got {self.max_broken_fraction}"
            )


@dataclass(frozen=True)
class ClipSpec:
    """What to decode around a keyframe: the fast pathway's frames and their spacing in source frames."""

    num_frames: int  # fast-pathway frames (T * alpha)
    sample_rate: int  # source frames between consecutive fast frames
    alpha: int  # slow pathway keeps every alpha-th fast frame

    @property
    def num_slow_frames(self) -> int:
        return self.num_frames // self.alpha

    @property
    def span(self) -> int:
        """Source frames covered by the fast pathway."""
        return self.num_frames * self.sample_rate
