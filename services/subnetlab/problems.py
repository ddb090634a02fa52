"""One error that carries every problem found in an input, not just the first.

A spec or a case file with three mistakes should cost one run to fix, not three: the
loaders collect every problem (each already `source: field: reason`) and raise one of
these. One problem reads as before, a single line; several are a count, then one
indented line per problem, which the CLI prints after its `error: ` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ProblemsError(ValueError):
    """One or more problems with an input; ``problems`` keeps them one by one."""

    what = "the input"
    """What the problems are in, for the first line: ``3 problems in the specs:``."""

    def __init__(self, *problems: str) -> None:
        if not problems:
            raise TypeError(f"{type(self).__name__} needs at least one problem")
        self.problems = list(problems)
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            listed = "\n".join(f"  {problem}" for problem in problems)
            super().__init__(f"{len(problems)} problems in {self.what}:\n{listed}")


def pydantic_reason(error: Mapping[str, Any]) -> str:
    """The reason of one pydantic error as people read it: a validator's own message
    without pydantic's ``Value error, `` prefix."""
    reason = str(error["msg"])
    return reason.removeprefix("Value error, ") if error["type"] == "value_error" else reason
