"""The `tubes.*` config section of `python -m seal_transfer.tubes` (torch-free): streams, experiments, training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from seal_transfer.errors import UserError
from seal_transfer.evaluation.config import BucketConfig
from seal_transfer.models.config import TadConfig

STEPS = ("extract", "train", "evaluate", "all")
TASKS = ("aa", "ca")
STREAMS = ("slowfast", "second")
STREAM_TITLES = {"slowfast": "Slowfast-T", "second": "TSP-T (stand-in)"}
TASK_TITLES = {"aa": "AA Tubes", "ca": "CA Tubes"}


@dataclass
class StreamConfig:
    """How one feature stream samples a tube. Defaults: the paper's SlowFast stream (30 fps, window 32, stride 4,
    4 fps boxes)."""

    fps: float = 30.0  # the video is read at this rate (frames picked by time from the native rate)
    window: int = 32  # frames per window at `fps`
    stride: int = 4  # frames between consecutive windows at `fps` (feature step = stride / fps seconds)
    box_fps: Optional[float] = 4.0  # annotated boxes are used at this rate; null = every annotated box
    short_side: Optional[int] = None  # frames are resized to this short side; null = data.augment.eval_short_side

    @property
    def step(self) -> float:
        return self.stride / self.fps

    def validate(self, key: str) -> None:
        if self.fps <= 0:
            raise UserError(f"config key '{key}.fps': must be > 0, got {self.fps}")
        if self.window < 1 or self.stride < 1:
            raise UserError(f"config key '{key}.window' / '{key}.stride': must be >= 1, got {self.window}, "
                            f"{self.stride}")
        if self.box_fps is not None and self.box_fps <= 0:
            raise UserError(f"config key '{key}.box_fps': must be > 0 or null, got {self.box_fps}")
        if self.short_side is not None and self.short_side < 1:
            raise UserError(f"config key '{key}.short_side': must be >= 1 or null, got {self.short_side}")


def second_stream_defaults() -> StreamConfig:
    """The paper's TSP stream: 15 fps, window 16, stride 2, 2 fps boxes."""
    return StreamConfig(fps=15.0, window=16, stride=2, box_fps=2.0)


@dataclass(frozen=True)
class Experiment:
    task: str
    streams: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.task}/{'+'.join(self.streams)}"

    @property
    def features_title(self) -> str:
        return "+".join(STREAM_TITLES[s] for s in self.streams)


def parse_experiment(text: str) -> Experiment:
    task, sep, streams = str(text).partition(":")
    parts = tuple(s for s in streams.split("+") if s)
    known = bool(parts) and all(s in STREAMS for s in parts) and len(set(parts)) == len(parts)
    if not sep or task not in TASKS or not known:
        raise UserError(f"config key 'tubes.experiments': '{text}' is not 'TASK:STREAM[+STREAM]' with TASK in "
                        f"{'|'.join(TASKS)} and STREAM in {'|'.join(STREAMS)}, e.g. ca:second+slowfast")
    return Experiment(task, parts)


@dataclass
class TadTrainConfig:
    """Optimisation of the temporal detector (paper silent; AdamW + warm-up cosine as in ActionFormer)."""

    epochs: int = 30
    batch_size: int = 8  # tubes per step
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01
    max_length: int = 2304  # training crops longer tubes to this many feature steps (inference uses all)
    gradient_clip: float = 1.0
    eval_batch_size: int = 16


@dataclass
class TubesConfig:
    """`python -m seal_transfer.tubes` (Table 4). Stream defaults are the paper's real-data settings."""

    step: str = "all"  # extract | train | evaluate | all
    experiments: list[str] = field(default_factory=lambda: ["aa:slowfast", "ca:second", "ca:second+slowfast"])
    second_stream_init: Optional[str] = None  # weights for the second ('TSP-T') stream; null = random backbone
    slowfast: StreamConfig = field(default_factory=StreamConfig)  # Slowfast-T: init= or RUN/pretrain/model.pt
    second: StreamConfig = field(default_factory=second_stream_defaults)
    batch_windows: int = 16  # windows per backbone forward
    chunk_windows: int = 128  # windows decoded together (one decode of their frame range)
    feature_dtype: str = "float16"  # stored features (float16 halves the disk; training reads float32)
    overwrite_features: bool = False  # recompute features that exist
    device: str = "auto"  # auto | cpu | cuda | cuda:N (extraction and TAD inference)
    progress: bool = True
    tad: TadConfig = field(default_factory=TadConfig)
    train: TadTrainConfig = field(default_factory=TadTrainConfig)
    aa_buckets: BucketConfig = field(default_factory=lambda: BucketConfig(ranges=[[0, 60]]))
    ca_buckets: BucketConfig = field(default_factory=lambda: BucketConfig(ranges=[[0, 50], [0, 120], [0, 200]]))
    tiou_thresholds: list[float] = field(default_factory=lambda: np.round(np.linspace(0.5, 0.95, 10), 2).tolist())

    def validate(self, key: str = "tubes") -> None:
        if self.step not in STEPS:
            raise UserError(f"config key 'tubes.step': '{self.step}' is not one of {', '.join(STEPS)}")
        for exp in self.experiments:
            parse_experiment(exp)
        if not self.experiments:
            raise UserError("config key 'tubes.experiments': empty list")
        self.slowfast.validate("tubes.slowfast")
        self.second.validate("tubes.second")
        if self.feature_dtype not in ("float16", "float32"):
            raise UserError(f"config key 'tubes.feature_dtype': '{self.feature_dtype}' is not float16 or float32")
        for key in ("batch_windows", "chunk_windows"):
            if getattr(self, key) < 1:
                raise UserError(f"config key 'tubes.{key}': must be >= 1")
        for key in ("epochs", "batch_size", "max_length", "eval_batch_size"):
            if getattr(self.train, key) < 1:
                raise UserError(f"config key 'tubes.train.{key}': must be >= 1")
        if self.train.lr <= 0:
            raise UserError("config key 'tubes.train.lr': must be > 0")
        if not self.tiou_thresholds or not all(0 < t <= 1 for t in self.tiou_thresholds):
            raise UserError("config key 'tubes.tiou_thresholds': need values in (0, 1]")
        if self.tad.levels < 1 or self.tad.hidden < 1:
            raise UserError("config keys 'tubes.tad.levels' / 'tubes.tad.hidden': must be >= 1")
