"""One way to fail on the command line: a single clear line, a non-zero exit, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

stderr = Console(stderr=True)


class CliError(Exception):
    """An error the user can fix: its message is printed as one line."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code`."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
