"""Whether a folder given on the command line can be written, checked before any work.

`subnetlab up --run-dir/--report` and `subnetlab experiment run --out` write their
results at the end of a long run; a folder that cannot be written must fail in one line
before the run, not lose its results after it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder this process writes in; None: it can.

    Checked before the run, so that a bad --run-dir fails in a line and a bad --report
    does not lose the results of a whole run at its end.
    """
    if path.exists():
        if not path.is_dir():
            return "exists and is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return "is not writable"
        return _probe(path, [])
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    missing = [path, *[p for p in path.parents if not p.exists()]]
    try:
        for folder in reversed(missing):
            folder.mkdir()
    except OSError as exc:
        _remove(missing)
        return f"cannot be created ({exc.strerror or exc})"
    return _probe(path, missing)


def _probe(folder: Path, created: list[Path]) -> str | None:
    """Write and remove a file in `folder` (access() says yes to root even where nothing
    can be written, e.g. under /proc), then remove the folders this check `created`:
    probing leaves nothing behind."""
    try:
        fd, name = tempfile.mkstemp(prefix=".subnetlab-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    finally:
        _remove(created)
    return None


def _remove(created: list[Path]) -> None:
    for folder in created:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()
