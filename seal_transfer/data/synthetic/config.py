"""Which synthetic world to build: the `data.synthetic` config section and the size presets (torch-free)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from seal_transfer.errors import UserError

PRESETS: dict[str, dict[str, float]] = {
    "tiny": dict(source_train=4, source_val=2, source_duration=8.0, target_train=2, target_val=2,
                 target_unlabeled=2, target_duration=8.0, generic_train=8, generic_val=4, generic_duration=2.0,
                 source_zipf=1.1),
    "small": dict(source_train=72, source_val=24, source_duration=12.0, target_train=24, target_val=8,
                  target_unlabeled=16, target_duration=15.0, generic_train=90, generic_val=30, generic_duration=2.0,
                  source_zipf=0.6),
    "paper": dict(source_train=160, source_val=40, source_duration=16.0, target_train=100, target_val=30,
                  target_unlabeled=60, target_duration=20.0, generic_train=400, generic_val=100, generic_duration=2.0,
                  source_zipf=1.1),
}


@dataclass
class SynthConfig:
    """Which world to build. Size fields left at None take the preset's value."""

    preset: str = "small"  # tiny | small | paper
    seed: int = 0
    source_train: Optional[int] = None
    source_val: Optional[int] = None
    source_duration: Optional[float] = None  # seconds per source video
    target_train: Optional[int] = None
    target_val: Optional[int] = None
    target_unlabeled: Optional[int] = None
    target_duration: Optional[float] = None  # seconds per target video (keyframes 902 .. 900 + duration - 2)
    generic_train: Optional[int] = None
    generic_val: Optional[int] = None
    generic_duration: Optional[float] = None
    source_zipf: Optional[float] = None  # long tail of source activity frequencies: weight ∝ rank^-source_zipf
    workers: int = 0  # processes for rendering; 0 = min(2, CPUs). Output does not depend on it.

    def validate(self, key: str = "data.synthetic") -> None:
        self.sizes(key)

    def sizes(self, key: str = "synth") -> dict[str, float]:
        if self.preset not in PRESETS:
            raise UserError(f"{key}.preset: '{self.preset}' is not one of {', '.join(PRESETS)}")
        sizes = dict(PRESETS[self.preset])
        where = key
        for name in sizes:
            value = getattr(self, name)
            if value is not None:
                sizes[name] = value
        for name, value in sizes.items():
            least = 0 if not name.endswith("duration") else (1 if name.startswith("generic") else 5)
            if value < least:
                raise UserError(f"{where}.{name}: {value} is below its minimum {least}"
                                + (" s (a target video needs keyframes 902..903)" if least == 5 else ""))
        return sizes

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("preset", "seed", "workers") and v is not None}
