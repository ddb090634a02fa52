"""Does a Redis server keep what it acknowledged? The ledger's check for `--redis-url`.

The ledger reports an extrinsic "included" only after its block's MULTI/EXEC returned, so
that promise is only as good as the server's persistence: with the append-only file off,
or fsynced once a second instead of on every write, a crash of the Redis host loses
blocks whose receipts were already reported. The embedded Redis is started with
`appendonly yes` and `appendfsync always`; a server given by URL is checked at startup.
"""

from __future__ import annotations

import redis

DURABLE = {"appendonly": "yes", "appendfsync": "always"}
"""The settings under which an acknowledged write survives a crash of the Redis host."""


def durability_problems(config: dict[str, str]) -> list[str]:
    """What in `config` (CONFIG GET answers) falls short of `DURABLE`, in words."""
    problems = []
    for name, wanted in DURABLE.items():
        value = config.get(name)
        if value is None:
            problems.append(f"{name} is not reported")
        elif value != wanted:
            problems.append(f"{name} is {value!r}, not {wanted!r}")
    return problems


def check_durability(client: redis.Redis) -> list[str]:
    """Ask the server (CONFIG GET) and return `durability_problems`; a server that will
    not say (CONFIG disabled, as on some managed Redis) is a problem too."""
    config: dict[str, str] = {}
    try:
        for name in DURABLE:
            answer = client.config_get(name)
            for key, value in answer.items():
                config[_text(key)] = _text(value)
    except redis.ResponseError as exc:
        return [f"the server refused CONFIG GET ({exc}), so its persistence is unknown"]
    return durability_problems(config)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
