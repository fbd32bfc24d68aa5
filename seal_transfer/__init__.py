"""seal_transfer: spatio-temporal action detection with SEAL pretraining and semi-supervised transfer to AVA."""

__version__ = "0.1.0"
