"""Scoring a miner's answer: pluggable, deterministic, and latency-aware.

A scorer maps (task, answer, latency) to [0, 1]. The default for verifiable tasks:
a wrong answer scores 0 whatever its speed; a right one scores 0.7 plus up to 0.3 for
speed, linear from 0.3 at latency 0 to 0 at the timeout. Speed matters, but never more
than being right.

Open prompts have no ground truth: the answer is compared with the validator's own
reference answer (the task's `expected`, see `tasks.with_reference`) by token F1, the
harmonic mean of token precision and recall over lower-cased word tokens (`\\w+`), which
rewards content over phrasing and is cheap enough to run on every response. The score is
that similarity times the same correctness-plus-speed factor:
`f1 * (0.7 + 0.3 * speed)`, so an answer sharing no token with the reference scores 0.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Protocol

from subnetlab.tasks import OPEN, Task, is_correct

CORRECTNESS_WEIGHT = 0.7


class Scorer(Protocol):
    """Anything that can grade an answer."""

    def __call__(self, task: Task, answer: str, latency_s: float, timeout_s: float) -> float: ...


def speed_bonus(latency_s: float, timeout_s: float) -> float:
    """1 at no latency, 0 at (or past) the timeout."""
    if timeout_s <= 0:
        return 0.0
    return max(0.0, 1.0 - latency_s / timeout_s)


def _speed_factor(latency_s: float, timeout_s: float) -> float:
    return CORRECTNESS_WEIGHT + (1.0 - CORRECTNESS_WEIGHT) * speed_bonus(latency_s, timeout_s)


def verifiable_score(task: Task, answer: str, latency_s: float, timeout_s: float) -> float:
    """The default scorer for tasks with a ground truth."""
    if not is_correct(task, answer):
        return 0.0
    return _speed_factor(latency_s, timeout_s)


def open_score(task: Task, answer: str, latency_s: float, timeout_s: float) -> float:
    """The default scorer for open prompts: token F1 with the reference answer, times the
    correctness-plus-speed factor."""
    return token_f1(answer, task.expected) * _speed_factor(latency_s, timeout_s)


def task_score(task: Task, answer: str, latency_s: float, timeout_s: float) -> float:
    """The default scorer: `open_score` for open prompts, `verifiable_score` otherwise."""
    scorer = open_score if task.kind == OPEN else verifiable_score
    return scorer(task, answer, latency_s, timeout_s)


_TOKEN = re.compile(r"\w+")


def token_f1(candidate: str, reference: str) -> float:
    """Token-level F1 between two texts, in [0, 1]; 1.0 when both are empty."""
    a = Counter(_TOKEN.findall(candidate.lower()))
    b = Counter(_TOKEN.findall(reference.lower()))
    if not a and not b:
        return 1.0
    overlap = sum((a & b).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(a.values())
    recall = overlap / sum(b.values())
    return 2 * precision * recall / (precision + recall)
