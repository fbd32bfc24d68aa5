"""The built-in synthetic action world (docs/synthetic_world.md): real h264 videos + SEAL / AVA annotations.

`config.py` holds the `data.synthetic` section and the size presets (read by config checks without rendering
anything); `world.py` builds, caches and describes worlds. The world's functions are imported on first use, so
reading the config does not load the renderer:

    from seal_transfer.data.synthetic import SynthConfig, ensure_world, describe_world
"""

from __future__ import annotations

from typing import Any

from seal_transfer.data.synthetic.config import PRESETS, SynthConfig

_WORLD = ("WORLD_VERSION", "describe_world", "ensure_world", "generate_world", "load_manifest", "world_name")
__all__ = ["PRESETS", "SynthConfig", *_WORLD]


def __getattr__(name: str) -> Any:
    if name in _WORLD:
        from seal_transfer.data.synthetic import world

        return getattr(world, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
