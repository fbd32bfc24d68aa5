"""Configuration: the schema (`schema.py`, composed of each package's own section) and the loader (`loader.py`).

    cfg = load_config(Config, ["configs/testbed.yaml"], ["trainer.max_epochs=2"])   # a typed, checked Config

Torch-free: `--help` and every config check run without importing torch.
"""

from seal_transfer.config.loader import describe_keys, load_config, to_yaml, with_overrides
from seal_transfer.config.schema import Config

__all__ = ["Config", "describe_keys", "load_config", "to_yaml", "with_overrides"]
