"""Atomic file output: a reader never sees a half-written file, even if the process is killed mid-write."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _default_mode() -> int:
    """Permissions a plain `open()` would give (0666 minus umask); mkstemp's 0600 would hide results from others."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path` for writers that need a file name (np.savez, torch.save, PyAV).

    The temporary keeps the target's suffix so format-sniffing writers behave; it is renamed on success.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.chmod(tmp_name, _default_mode())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; rename it over `path` only if the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def json_safe(obj: Any) -> Any:
    """NaN/inf → null (JSON has no NaN; an undefined AP, e.g. of an empty class bucket, is 'no value')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically, pretty-printed and key-sorted so diffs between runs stay readable."""
    with atomic_write(path) as handle:
        json.dump(json_safe(obj), handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
