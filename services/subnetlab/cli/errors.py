"""One way to fail on the command line: a single clear line, a non-zero exit, no traceback.

Library code raises exceptions that say what is wrong (a wallet that does not exist, a
weight that is not a number); the commands never print them themselves. :func:`checked`
is the one place where such an exception becomes ``error: ...`` on stderr and exit code
2, so every command fails the same way and none needs its own try/except.

Click's own usage errors (a missing or unknown option, a value of the wrong type) would
otherwise be a multi-line usage box; commands built with :class:`OneLineCommand`, in
groups built with :class:`OneLineGroup`, report them as one line too. Every sub-app is a
:class:`OneLineTyper`, which makes both the default, so a new command cannot forget it
(tests/unit/test_cli_errors.py walks the whole command tree to keep it so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

stderr = Console(stderr=True)

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """An error the user can fix: its message is printed as one line."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code`."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def checked(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``func``; a user error it raises becomes ``error: ...`` and exit code 2.

    User errors are :class:`CliError` and ``ValueError`` (the wallet, the input parsers
    and the address decoder all raise subclasses of it, with a message meant for people)
    and ``OSError`` (a key file that cannot be read or written: the message names it).
    """
    try:
        return func(*args, **kwargs)
    except (CliError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")


def _usage_error_class() -> type[Exception]:
    """Click's UsageError as this Typer uses it: recent Typers carry a private copy of
    click, older ones use click itself; in both, BadParameter derives from it."""
    found = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    return cast("type[Exception]", found)


_USAGE_ERROR = _usage_error_class()


def usage_error(message: str) -> Exception:
    """A usage error with exactly `message`, for parsers of option values to raise: the
    command reports it as one line with the same `(see ... --help)` hint as click's own."""
    return _USAGE_ERROR(message)


def _usage(exc: Exception, ctx: Any) -> NoReturn:
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as asked for
        raise exc
    message = str(getattr(exc, "format_message", exc.__str__)()).rstrip(".")
    fail(f"{message} (see `{ctx.command_path} --help`)")


class OneLineCommand(TyperCommand):
    """A command whose usage errors are one ``error:`` line (``--help`` is unchanged)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERROR as exc:
            _usage(exc, ctx)


class OneLineGroup(TyperGroup):
    """A command group whose "no such command" (or bad option of its own) is one
    ``error:`` line.

    Running the group with no arguments still shows its help (``no_args_is_help``).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERROR as exc:
            _usage(exc, ctx)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _USAGE_ERROR as exc:
            _usage(exc, ctx)


class OneLineTyper(typer.Typer):
    """A Typer app whose group and commands report usage errors as one line by default.

    Typer builds each command with the class given to ``command(cls=...)``, not with the
    group's; defaulting it here means no command of the CLI can fall back to Typer's
    multi-line usage box by omission.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", OneLineGroup)
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        """Typer's ``command``, with :class:`OneLineCommand` as the default class."""
        kwargs.setdefault("cls", OneLineCommand)
        return super().command(name, **kwargs)
