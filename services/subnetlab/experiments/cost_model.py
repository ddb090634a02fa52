"""What a miner pays to answer, and what its share of the subnet's emission is worth: the
cost model of experiment `miners` (claim 4).

Why a model of its own: whether a passthrough, copycat or sybil miner "out-earns" an
honest one is a question of money, not of incentive shares. The chain says which share of
the miners' emission each hotkey gets; this module turns that share and the work each miner
type does into US dollars per day. It is pure arithmetic (no chain, no clock, no random
source), every default is a named parameter with its reason, and docs/experiments.md
repeats them.

The miner types and what they pay for (per operator, per day):
- honest: runs its own engine on rented GPUs, whole GPUs for the whole day (an engine
  that must answer at any moment cannot be rented by the request), as many as its load
  needs at `gpu_tokens_per_second`, and at least one; plus its host.
- sybil: the same engine behind several hotkeys: the GPUs its combined load needs (one,
  at the defaults) and one host, for the income of every hotkey.
- passthrough: no GPU; every token it returns is bought from an upstream API at
  `api_price_per_million_tokens` (prompt and completion tokens alike); plus its host.
- copycat: no GPU and no API bill: it relays someone else's engine; only its host.
- lazy: a canned answer; only its host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MINER_TYPES = ("honest", "passthrough", "copycat", "sybil", "lazy")
SECONDS_PER_DAY = 86_400.0


class CostModelError(ValueError):
    """A cost-model parameter out of its range (the message names the field)."""


@dataclass(frozen=True)
class CostModel:
    """The prices and workloads the experiment's dollars come from.

    Defaults, and why:
    - `gpu_cost_per_hour` 2.50 USD: an on-demand 80 GB data-centre GPU (H100 class) from a
      cloud or GPU marketplace; spot and long-term prices are lower, so honest cost is an
      upper estimate (sweep `--gpu-costs` to move it).
    - `gpu_tokens_per_second` 2000: what one such GPU serves of an 8B-parameter chat model
      with continuous batching (vLLM-class engine), completion and prompt tokens together.
    - `api_price_per_million_tokens` 0.20 USD: a hosted 8B-class open model's blended price
      per million tokens at API resellers (sweep `--api-prices`).
    - `host_cost_per_hour` 0.05 USD: a small CPU virtual machine that serves a miner's
      axon (every type pays it once per process).
    - `requests_per_hotkey_per_day` 20000: validators' synthetic queries plus organic
      traffic that reach one registered hotkey (about one every 4 s).
    - `tokens_per_request` 400: a prompt of about 150 tokens and an answer of about 250.
    - `miner_emission_usd_per_day` 5000 USD: what the miners' part (41%) of a mid-sized
      subnet's emission is worth per day (about 1% of a network emitting 3600 tokens a
      day, at 330 USD a token); only ratios of it to costs matter, so it is a parameter.
    """

    gpu_cost_per_hour: float = 2.50
    gpu_tokens_per_second: float = 2000.0
    api_price_per_million_tokens: float = 0.20
    host_cost_per_hour: float = 0.05
    requests_per_hotkey_per_day: float = 20_000.0
    tokens_per_request: float = 400.0
    miner_emission_usd_per_day: float = 5_000.0

    def __post_init__(self) -> None:
        for name in ("gpu_cost_per_hour", "api_price_per_million_tokens", "host_cost_per_hour",
                     "requests_per_hotkey_per_day", "tokens_per_request",
                     "miner_emission_usd_per_day"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise CostModelError(f"{name}: {value} must be a finite number >= 0")
        if not math.isfinite(self.gpu_tokens_per_second) or self.gpu_tokens_per_second <= 0:
            raise CostModelError(f"gpu_tokens_per_second: {self.gpu_tokens_per_second} "
                                 "must be a finite number > 0")

    def tokens_per_day(self, hotkeys: int = 1) -> float:
        """Tokens an operator answering for `hotkeys` registered hotkeys serves per day."""
        return hotkeys * self.requests_per_hotkey_per_day * self.tokens_per_request

    def gpus(self, hotkeys: int = 1) -> int:
        """Whole GPUs an engine needs for the load of `hotkeys` hotkeys (at least one)."""
        needed = self.tokens_per_day(hotkeys) / SECONDS_PER_DAY / self.gpu_tokens_per_second
        return max(1, math.ceil(needed - 1e-9))

    def host_cost_per_day(self) -> float:
        return self.host_cost_per_hour * 24

    def engine_cost_per_day(self, hotkeys: int = 1) -> float:
        """Rented GPUs, all day, for the load of `hotkeys` hotkeys."""
        return self.gpus(hotkeys) * self.gpu_cost_per_hour * 24

    def api_cost_per_day(self, hotkeys: int = 1) -> float:
        """Every token of `hotkeys` hotkeys' load bought from the upstream API."""
        return self.tokens_per_day(hotkeys) / 1e6 * self.api_price_per_million_tokens

    def cost_per_day(self, miner_type: str, hotkeys: int = 1) -> float:
        """What an operator of `miner_type` pays per day (USD) for `hotkeys` hotkeys."""
        if miner_type in ("honest", "sybil"):
            return self.engine_cost_per_day(hotkeys) + self.host_cost_per_day()
        if miner_type == "passthrough":
            return self.api_cost_per_day(hotkeys) + self.host_cost_per_day()
        if miner_type in ("copycat", "lazy"):
            return self.host_cost_per_day()
        raise CostModelError(f"miner_type: {miner_type!r} is not one of {', '.join(MINER_TYPES)}")

    def revenue_per_day(self, incentive_share: float) -> float:
        """USD per day for `incentive_share` of the miners' emission (the chain's incentive
        is each hotkey's share of it; a sybil's shares are summed before)."""
        if not 0 <= incentive_share <= 1 + 1e-9:
            raise CostModelError(f"incentive_share: {incentive_share} is outside [0, 1]")
        return incentive_share * self.miner_emission_usd_per_day

    def profit_per_day(self, miner_type: str, incentive_share: float, hotkeys: int = 1) -> float:
        """Revenue minus cost, USD per day."""
        return self.revenue_per_day(incentive_share) - self.cost_per_day(miner_type, hotkeys)
