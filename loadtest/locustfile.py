"""Organic customers of a subnetlab testnet: a locust user sending chat completions.

Run by `subnetlab bench organic` (headless, one strategy at a time), or by hand:

    locust -f loadtest/locustfile.py --headless -u 4 -r 4 -t 30s \
        --run-dir ~/.subnetlab/runs/RUN --strategies broadcast,spot-check --stream-fraction 0.2

Gateways and the API key come from the run dir's run.json (written by `subnetlab up`), or
from --gateways URL,URL and --api-key. Each request picks a strategy from --strategies (the
gateway's `X-Subnetlab-Strategy` header) and is named after it, so locust's statistics have
one row per strategy ("broadcast", "broadcast stream", ...). The request rules (prompts,
what a good answer is) live in `subnetlab.bench.organic_load`.
"""

# locust first: it monkey-patches the standard library (gevent) before anything imports ssl.
import locust  # noqa: I001
from locust import HttpUser, constant, events, task

import itertools
import json
import random
from typing import Any

from subnetlab.bench.organic_load import (
    LoadConfig,
    answer_problem,
    next_request,
    parse_list,
    streamed_completion,
)
from subnetlab.bench.organic_run import read_run_info

_users = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("subnetlab")
    group.add_argument("--run-dir", default="", env_var="SUBNETLAB_LOAD_RUN_DIR",
                       help="A testnet's run dir (its run.json names gateways and API key).")
    group.add_argument("--gateways", default="", env_var="SUBNETLAB_LOAD_GATEWAYS",
                       help="Gateway base URLs, comma-separated (instead of --run-dir).")
    group.add_argument("--api-key", default="", env_var="SUBNETLAB_LOAD_API_KEY",
                       help="Gateway API key (instead of --run-dir).")
    group.add_argument("--strategies", default="broadcast,best-of-n,spot-check",
                       env_var="SUBNETLAB_LOAD_STRATEGIES",
                       help="Strategies to pick from per request, comma-separated.")
    group.add_argument("--stream-fraction", type=float, default=0.0,
                       env_var="SUBNETLAB_LOAD_STREAM_FRACTION",
                       help="Share of requests sent with stream=true.")
    group.add_argument("--seed", type=int, default=7, env_var="SUBNETLAB_LOAD_SEED",
                       help="Prompt and strategy choices are seeded per user from this.")


def _config(options: Any) -> LoadConfig:
    gateways, api_key = parse_list(options.gateways), options.api_key
    if options.run_dir:
        info = read_run_info(options.run_dir)
        gateways = gateways or info.gateway_urls
        api_key = api_key or info.api_key
    return LoadConfig(gateways, api_key, parse_list(options.strategies),
                      options.stream_fraction)


@events.init.add_listener
def _check(environment: Any, **_kwargs: Any) -> None:
    """Refuse a bad configuration before any user starts (field and reason)."""
    if environment.parsed_options is not None:
        try:
            environment.subnetlab_config = _config(environment.parsed_options)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None


class OrganicCustomer(HttpUser):
    """A customer that sends its next chat completion as soon as the last one is answered."""

    wait_time = constant(0)
    host = "http://127.0.0.1"  # every request carries its gateway's absolute URL

    def on_start(self) -> None:
        self.config: LoadConfig = self.environment.subnetlab_config
        seed = self.environment.parsed_options.seed
        self.rng = random.Random(f"{seed}:{next(_users)}")

    @task
    def chat(self) -> None:
        request = next_request(self.config, self.rng)
        with self.client.post(request.url, json=request.body, headers=request.headers,
                              name=request.name, stream=request.stream,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    payload = streamed_completion(response.iter_lines(decode_unicode=True))
                else:
                    payload = json.loads(response.content)
            except ValueError as exc:
                response.failure(f"unreadable answer: {exc}")
                return
            problem = answer_problem(payload, request.strategy)
            if problem is not None:
                response.failure(problem)
            else:
                response.success()


__all__ = ["OrganicCustomer", "locust"]
