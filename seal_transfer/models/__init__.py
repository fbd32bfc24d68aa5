"""Models: the SlowFast detector / classifier (`slowfast.py`, pytorchvideo builders), the temporal detector
(`tad.py`), checkpoint reading (`checkpoints.py`) and their torch-free config sections (`config.py`).

Nothing is imported here, so `seal_transfer.models.config` loads without torch.
"""
