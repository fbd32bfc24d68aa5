"""The built-in synthetic action world (docs/synthetic_world.md): real h264 videos + SEAL / AVA annotations."""

from seal_transfer.data.synthetic.world import (
    PRESETS,
    WORLD_VERSION,
    SynthConfig,
    describe_world,
    ensure_world,
    generate_world,
    load_manifest,
    world_name,
)

__all__ = [
    "PRESETS",
    "WORLD_VERSION",
    "SynthConfig",
    "describe_world",
    "ensure_world",
    "generate_world",
    "load_manifest",
    "world_name",
]
