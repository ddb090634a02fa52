"""The one exception every benchmark raises when it cannot produce figures.

A benchmark that fails (its server did not start, its requests were refused, nothing was
included) has no numbers to print; the CLI turns this into one ``error:`` line. Setting
up the ledger side of a bench raises `subnetlab.local.bootstrap.SetupError`, which the
CLI reports the same way.
"""

from __future__ import annotations


class BenchError(RuntimeError):
    """The benchmark could not produce figures (server did not start, requests failed)."""
