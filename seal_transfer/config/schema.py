"""The toolkit's config schema: one structured dataclass tree shared by every stage.

Each package owns the dataclass of its own knobs in a torch-free `config.py` (data, models, engine, pseudo, tad,
evaluation); this module only composes them and adds the run-level keys and the sweep command's section.
Paper defaults wherever the paper names one. Checks that omegaconf's types cannot express (choices, ranges) are
each section's `validate(key)`, which the loader runs for every section at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from seal_transfer.data.config import DataConfig
from seal_transfer.engine.config import OptimConfig, TrainerConfig
from seal_transfer.errors import UserError
from seal_transfer.evaluation.config import BucketConfig
from seal_transfer.models.config import ModelConfig
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.tad.config import TubesConfig

TASKS = ("detection", "classification")


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

    def validate(self, key: str = "") -> None:
        if self.task not in TASKS:
            raise UserError(f"config key 'task': '{self.task}' is not one of {', '.join(TASKS)}")
