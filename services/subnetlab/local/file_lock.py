"""An exclusive lock file shared by the one-time builds under ``~/.cache/subnetlab``.

The vLLM environment and the tiny model are built once and shared by every process that
needs them (tests running side by side, two `subnetlab up` runs); whoever comes second
waits on the lock and then finds the build done. Its own module so that both builders can
use it without importing each other.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created), held for the `with` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
