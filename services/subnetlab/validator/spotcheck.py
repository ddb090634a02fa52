"""Who a spot-check catches: pure logic shared by the gateway and the audit.

A spot-check grades several miners' answers to the same request against the validator's
reference answer (token F1). A miner is caught when its answer falls below the
threshold while every other miner asked agrees with the reference (at or above it), and
there is at least one other: one dissenter among agreeing peers is cheating (or broken);
a split vote, or a lone answer, proves nothing, so nobody is penalised for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from subnetlab.validator.scoring import token_f1

DEFAULT_THRESHOLD = 0.5


def similarities(answers: Mapping[int, str], reference: str) -> dict[int, float]:
    """Each miner's token F1 with the reference answer."""
    return {uid: token_f1(text, reference) for uid, text in answers.items()}


def caught(similarity: Mapping[int, float], threshold: float = DEFAULT_THRESHOLD) -> list[int]:
    """The uids below `threshold` while all the others are at or above it."""
    wrong = [uid for uid, value in similarity.items() if value < threshold]
    if len(wrong) != 1 or len(similarity) < 2:
        return []
    return wrong
