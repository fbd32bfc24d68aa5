"""`python -m seal_transfer.synth preset=tiny|small|paper out=DIR`: generate the built-in synthetic action world
(mp4 videos + SEAL and AVA annotation files) and print what it holds. Without `out` the world goes to the cache
the stages use (`cache_dir`), exactly as a stage would generate it on first use."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.errors import UserError

DESCRIPTION = "Generate the synthetic action world (SYNTHETIC data in the real SEAL and AVA file formats)."


@dataclass
class SynthCommand:
    preset: str = "small"  # tiny (tests, seconds) | small (quick start) | paper (Table 5 reproduction)
    seed: int = 0
    out: Optional[str] = None  # folder to write; null = the stages' cache (cache_dir/<preset>-seed<seed>-v<version>)
    cache_dir: str = "~/.cache/seal_transfer"
    force: bool = False  # regenerate even if the folder already holds a world

    def validate(self, key: str = "") -> None:
        from seal_transfer.data.synthetic.config import PRESETS

        if self.preset not in PRESETS:
            raise UserError(f"config key 'preset': '{self.preset}' is not one of {', '.join(PRESETS)}")


def synth(cfg: Any) -> int:
    from seal_transfer.data.synthetic.config import SynthConfig
    from seal_transfer.data.synthetic.world import describe_world, ensure_world, generate_world

    synth_cfg = SynthConfig(preset=cfg.preset, seed=int(cfg.seed))
    if cfg.out is None:
        path = Path(ensure_world(synth_cfg, Path(cfg.cache_dir).expanduser()))
    else:
        path = Path(cfg.out).expanduser()
        if (path / "manifest.json").exists() and not cfg.force:
            print(f"[synth] {path} already holds a world (force=true to regenerate)")
        else:
            generate_world(synth_cfg, path)
    print(describe_world(path))
    return 0


main = stage_main("seal_transfer.synth", DESCRIPTION, None, synth, schema=SynthCommand)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
