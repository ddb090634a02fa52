"""`subnetlab faucet`'s proof of work: solved automatically, with a progress bar.

Why a bar: at the highest difficulty the search takes seconds; a silent terminal looks
hung. The bar goes to stderr and disappears when done (invisible when not a terminal), so
`--json` output stays clean. The search itself is `ledger.faucet_work.faucet_params`.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from subnetlab.cli.shared import submit
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import Json, LedgerClient, LedgerError
from subnetlab.ledger.faucet_work import RETRY_CODES, faucet_params

ATTEMPTS = 2
"""Solves per drip: the work expires `pow_window_blocks` after its block, so a slow search
(or a slow submit) gets one more try over a newer block, and then the refusal is shown."""


def solved_faucet_params(client: LedgerClient, account: str) -> dict[str, int]:
    """The faucet call's params for `account`, its proof of work solved when asked for.

    The bar's total is the expected number of tries (2**difficulty); a search that runs
    past it keeps going (the bar then stays full) until a nonce meets the difficulty.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("faucet: proof of work", total=None)

        def advance(tried: int, expected: int) -> None:
            bar.update(task, total=expected, completed=min(tried, expected))

        return faucet_params(client, account, advance)


def drip(client: LedgerClient, key: Keypair) -> Json:
    """Submit a `faucet` call signed by `key` (work solved when asked); its receipt."""
    for _ in range(ATTEMPTS - 1):
        try:
            return submit(client, key, "faucet", solved_faucet_params(client, key.ss58_address))
        except LedgerError as exc:
            if exc.code not in RETRY_CODES:
                raise
    return submit(client, key, "faucet", solved_faucet_params(client, key.ss58_address))
