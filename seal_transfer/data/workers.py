"""Set-up of the processes that decode and transform clips (DataLoader workers).

torch already runs each worker with one intra-op thread, and `KeyframeDataset` gives each of its decoders one
thread there. What is left is the allocator: a worker allocates and frees the same few large blocks for every
clip (crop windows, resized clips, the float output of 5-20 MB each). glibc's defaults serve blocks that large
with fresh mmap pages, or hand the freed heap top back to the kernel, so every clip pays thousands of page faults
to get the same memory again (measured with scripts/bench_data.py: ~5,000 faults per keyframe, 10-15 % of the
loader's CPU time). Raising the two thresholds lets freed blocks be reused instead.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3

# Blocks up to this size come from the heap (a 32-frame 224x224 float clip is 19 MB) ...
MMAP_THRESHOLD = 32 << 20
# ... and up to this much freed memory at the heap top is kept for reuse rather than returned to the kernel.
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Tell glibc's malloc to reuse freed large blocks (process-wide). False where there is no glibc mallopt."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )


def decode_worker_init(worker_id: int) -> None:
    """`worker_init_fn` for DataLoaders over the decoding datasets."""
    del worker_id
    keep_freed_memory()
