"""The task catalogue: verifiable synthetic tasks, and open prompts.

Validators ask these tasks and grade the answers; simulated engines answer them; specs
and the organic load name their kinds. So the catalogue sits on the floor beneath miner
and validator (see the import contract in pyproject.toml), imported by both and importing
neither.

Verifiable kinds (`KINDS`) generate a prompt and its ground truth from a seed, so a task
is reproducible from its evidence record (kind + seed) alone: an auditor regenerates it
and re-scores the stored response. The simulated miner backend uses `solve` to play a
model of a given accuracy; a real model just reads the prompt.

The `open` kind picks a prompt from a bundled prompt set (`data/open_prompts.txt`) by
seed. It has no ground truth: its `expected` is the validator's own reference model's
answer, filled in at run time (`with_reference`) and stored in the evidence, so an
auditor re-scores it without running any model.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

KINDS = ("arithmetic", "string", "sorting", "extraction")
"""The verifiable kinds: the validator computes the right answer itself."""
OPEN = "open"
TASK_KINDS = (*KINDS, OPEN)
"""Every kind a validator's task mix may name."""


@dataclass(frozen=True)
class Task:
    """One task: what to ask, what the right answer is, and how to rebuild it."""

    kind: str
    seed: int
    prompt: str
    expected: str


def _passages() -> list[str]:
    text = resources.files("subnetlab.data").joinpath("passages.txt").read_text()
    return [p.strip() for p in text.split("\n\n") if p.strip()]


@cache
def open_prompts() -> tuple[str, ...]:
    """The bundled open prompts, one a line (`#` lines are comments); read once."""
    text = resources.files("subnetlab.data").joinpath("open_prompts.txt").read_text()
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#"))


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 999)
    op = rng.choice(["+", "-", "*"])
    value = {"+": a + b, "-": a - b, "*": a * b}[op] + c
    return f"Compute ({a} {op} {b}) + {c}. Answer with the number only.", str(value)


def _string(rng: random.Random) -> tuple[str, str]:
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 12)))
    how = rng.choice(["reverse", "upper", "vowels"])
    if how == "reverse":
        return f"Reverse the string '{word}'. Answer with the result only.", word[::-1]
    if how == "upper":
        return f"Write '{word}' in upper case. Answer with the result only.", word.upper()
    stripped = re.sub("[aeiou]", "", word)
    return f"Remove every vowel from '{word}'. Answer with the result only.", stripped


def _sorting(rng: random.Random) -> tuple[str, str]:
    numbers = [rng.randint(-99, 999) for _ in range(rng.randint(4, 9))]
    listed = ", ".join(map(str, numbers))
    answer = ", ".join(map(str, sorted(numbers)))
    return f"Sort ascending: {listed}. Answer with the numbers separated by ', '.", answer


def _extraction(rng: random.Random) -> tuple[str, str]:
    passage = rng.choice(_passages())
    years = re.findall(r"\b(1[5-9]\d\d|20\d\d)\b", passage)
    if years:
        return (f"Text: {passage}\nWhich is the first year mentioned in the text? "
                "Answer with the year only.", years[0])
    words = passage.split()
    return (f"Text: {passage}\nWhat is the third word of the text? Answer with the word only.",
            words[2].strip(".,;:"))


_GENERATORS = {"arithmetic": _arithmetic, "string": _string, "sorting": _sorting,
               "extraction": _extraction}


def generate(kind: str, seed: int) -> Task:
    """The task of `kind` for `seed` (same inputs, same task, on any machine).

    An `open` task comes without its expected answer (""): see `with_reference`.
    """
    rng = random.Random(f"{kind}:{seed}")
    if kind == OPEN:
        return Task(kind, seed, rng.choice(open_prompts()), "")
    if kind not in _GENERATORS:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(TASK_KINDS)}")
    prompt, expected = _GENERATORS[kind](rng)
    return Task(kind, seed, prompt, expected)


def with_reference(task: Task, reference: str) -> Task:
    """An open task with the reference model's answer as what answers are compared with."""
    if task.kind != OPEN:
        raise ValueError(f"only open tasks take a reference answer, not {task.kind!r}")
    return replace(task, expected=reference)


def parse_kind_values(text: str, kinds: Sequence[str], value: str,
                      valid: Callable[[float], bool], requirement: str) -> dict[str, float]:
    """`kind=number,...` into numbers: each kind one of `kinds`, at most once, each number
    `valid` (else "VALUE of KIND must be REQUIREMENT"). The shape of a validator's task mix
    (`--tasks`) and of a sim miner's accuracy per kind (`--task-accuracy`)."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, raw = part.partition("=")
        kind = kind.strip()
        if not sep:
            raise ValueError(f"{part!r} is not kind={value}")
        if kind not in kinds:
            raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(kinds)}")
        if kind in values:
            raise ValueError(f"task kind {kind!r} is given twice")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{value} of {kind!r} is not a number: {raw.strip()!r}") from None
        if not (math.isfinite(number) and valid(number)):
            raise ValueError(f"{value} of {kind!r} must be {requirement}, got {raw.strip()}")
        values[kind] = number
    return values


def parse_task_mix(text: str) -> dict[str, float]:
    """`kind=weight,...` into weights: known kinds, finite weights >= 0, one of them > 0."""
    mix = parse_kind_values(text, TASK_KINDS, "weight", lambda w: w >= 0, "a finite number >= 0")
    if not any(w > 0 for w in mix.values()):
        raise ValueError("at least one task kind needs a positive weight")
    return mix


def normalise(answer: str) -> str:
    """Compare answers loosely: case, surrounding space and trailing dots do not matter."""
    return answer.strip().strip(".").strip().lower()


def is_correct(task: Task, answer: str) -> bool:
    return normalise(answer) == normalise(task.expected)


_ARITH = re.compile(r"Compute \((-?\d+) ([+\-*]) (-?\d+)\) \+ (-?\d+)\.")
_REVERSE = re.compile(r"Reverse the string '([a-z]+)'")
_UPPER = re.compile(r"Write '([a-z]+)' in upper case")
_VOWELS = re.compile(r"Remove every vowel from '([a-z]+)'")
_SORT = re.compile(r"Sort ascending: ([-\d, ]+)\.")
_TEXT = re.compile(r"Text: (.*)\n", re.S)


def solve(prompt: str) -> str | None:
    """The right answer to a prompt made by `generate`, or None for anything else.

    This is what a perfect model would answer; the simulated backend uses it to play a
    model of a chosen accuracy, and the tests use it as an oracle.
    """
    if m := _ARITH.search(prompt):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        return str({"+": a + b, "-": a - b, "*": a * b}[op] + c)
    if m := _REVERSE.search(prompt):
        return m[1][::-1]
    if m := _UPPER.search(prompt):
        return m[1].upper()
    if m := _VOWELS.search(prompt):
        return re.sub("[aeiou]", "", m[1])
    if m := _SORT.search(prompt):
        numbers = sorted(int(x) for x in m[1].split(","))
        return ", ".join(map(str, numbers))
    if m := _TEXT.search(prompt):
        passage = m[1]
        if "first year" in prompt:
            years = re.findall(r"\b(1[5-9]\d\d|20\d\d)\b", passage)
            return years[0] if years else None
        words = passage.split()
        return words[2].strip(".,;:") if len(words) > 2 else None
    return None
