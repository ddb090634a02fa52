"""One scoring round: sample miners, ask them one task, grade the answers, fold the scores in.

The task is verifiable (graded by its own answer key) or an open prompt, graded against
the reference model's answer, which is asked while the miners answer. Penalties come from
the gateway's spot-checks, not from here (scoreboard.Scoreboard.penalise).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from subnetlab.neuron.follower import ChainFollower
from subnetlab.tasks import OPEN, Task, generate, with_reference
from subnetlab.validator.answer_proof import round_request
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.miners import MinerAnswer, ask, miners_of, sample
from subnetlab.validator.reference import Grader
from subnetlab.validator.scoreboard import Scoreboard
from subnetlab.validator.scoring import Scorer
from subnetlab.validator.stage import Stage, StageMarker


@dataclass
class ScoringRound:
    """Asks and grades; what it learns goes to the scoreboard.

    `rng` is the validator's seeded generator of choices (shared with the weight policy and
    the gateway); `tasks` its seeded generator of tasks. A seeded validator asks the same
    tasks in the same order in every run, and the same miners whenever the metagraph and
    the order of organic requests are the same.
    """

    config: ValidatorConfig
    follower: ChainFollower
    http: httpx.AsyncClient
    grader: Grader
    board: Scoreboard
    metrics: ValidatorMetrics
    scorer: Scorer
    rng: random.Random
    stage: StageMarker
    tasks: random.Random | None = None
    """The stream the tasks (kind and seed) come from, apart from `rng` (None: `rng`).
    Why apart: whom a round asks depends on the metagraph of the moment and the gateway
    draws from `rng` as customers arrive, so with one stream a seeded validator's tasks
    would follow the timing of the run; kept apart, its n-th task is the same in every run."""

    def new_task(self) -> Task:
        rng = self.tasks or self.rng
        kinds = list(self.config.task_weights)
        kind = rng.choices(kinds, weights=[self.config.task_weights[k] for k in kinds])[0]
        return generate(kind, rng.randrange(2**31))

    async def run(self) -> list[MinerAnswer]:
        """Ask a sample of miners one task, score the answers, update moving scores."""
        metagraph = self.follower.metagraph or {}
        chosen = sample(miners_of(metagraph, self.config.hotkey), self.config.sample_size,
                        self.rng)
        if not chosen:
            return []
        task = self.new_task()
        body = round_request(task.prompt)
        asks = [ask(self.http, self.config.keypair, n, body, self.config.timeout_s)
                for n in chosen]
        reference: dict[str, Any] = {}
        if task.kind == OPEN:
            self.stage.now = Stage.REFERENCE
            graded = asyncio.ensure_future(self.grader.complete(body, "open_task"))
            answers = list(await asyncio.gather(*asks))
            completion = await graded
            self.stage.now = Stage.QUERY
            task = with_reference(task, completion.text)
            reference = {"reference": completion.text,
                         "reference_simulated": bool(completion.simulated)}
        else:
            answers = list(await asyncio.gather(*asks))
        self.board.add_round([self._record(task, answer, reference) for answer in answers],
                             self.config.alpha)
        return answers

    def _record(self, task: Task, answer: MinerAnswer, reference: dict[str, Any]
                ) -> dict[str, Any]:
        """One answer, counted and scored, as the evidence keeps it."""
        outcome = "ok" if answer.ok else (answer.error or "error")
        self.metrics.queries.labels(outcome=outcome).inc()
        if answer.ok:
            self.metrics.miner_latency.observe(answer.latency_s)
        started = time.perf_counter()
        score = self.scorer(task, answer.text, answer.latency_s, self.config.timeout_s)
        self.metrics.scoring_seconds.observe(time.perf_counter() - started)
        return {
            "uid": answer.uid, "hotkey": answer.hotkey, "kind": task.kind,
            "seed": task.seed, "prompt": task.prompt, "response": answer.text,
            "latency_s": answer.latency_s, "score": score, "round": self.board.rounds,
            **reference, **({"answer": answer.signed} if answer.signed else {}),
        }
