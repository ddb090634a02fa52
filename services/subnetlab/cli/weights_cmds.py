"""`subnetlab weights set|commit|reveal`: what a validator's hotkey tells the chain.

Weights are signed by the hotkey (stored unencrypted, as btcli does), so no password is
asked. Floats on the command line are max-upscaled to u16 here, so a commit hashes the
exact integers its reveal will send. `commit` saves the salt before it submits (see
:mod:`subnetlab.cli.commits`); `reveal --wait` sleeps until the reveal epoch comes, like
btcli's automatic reveal, and shows a spinner meanwhile.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from subnetlab.cli.commits import (
    SavedCommit,
    blocks_until_epoch,
    discard,
    epoch_at_block,
    new_commit,
    pick,
    save,
    saved_commits,
)
from subnetlab.cli.errors import OneLineCommand, OneLineGroup, checked, fail
from subnetlab.cli.inputs import U64_MAX, weight_vector
from subnetlab.cli.shared import (
    DEFAULT_LEDGER_URL,
    AsJson,
    HotkeyName,
    LedgerUrl,
    Netuid,
    check_address,
    console,
    ledger_session,
    print_json,
    print_table,
    progress,
    report,
    submit,
    whole_number,
)
from subnetlab.cli.signer import DevKey, SignerWallet, signer
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import Json, LedgerClient, LedgerClientError, LedgerError

weights_app = typer.Typer(
    cls=OneLineGroup, help="Set weights, or commit and later reveal them.", no_args_is_help=True
)

Uids = Annotated[str, typer.Option("--uids", help="Comma-separated uids, e.g. 0,1,2.")]
Weights = Annotated[
    str, typer.Option("--weights", help="Comma-separated weights, e.g. 0.5,0.3,0.2.")
]
VersionKey = Annotated[
    int,
    typer.Option("--version-key", help="Version key sent with the weights.", metavar="N",
                 parser=whole_number("--version-key", 0, U64_MAX)),
]
_POLL_S = 1.0
"""Longest sleep between two looks at the chain while waiting for an epoch."""


@weights_app.command("set", cls=OneLineCommand)
def weights_set(
    netuid: Netuid, uids: Uids, weights: Weights, version_key: VersionKey = 0,
    name: SignerWallet = None, hotkey: HotkeyName = "default", dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False,
) -> None:
    """Set the hotkey's weights on a subnet (floats are max-upscaled to u16)."""
    uid_list, values = checked(weight_vector, uids, weights)
    key = signer(name, dev_key).hotkey(hotkey)
    with ledger_session(ledger, "weights set refused") as client:
        receipt = submit(client, key, "set_weights", {
            "netuid": netuid, "uids": uid_list, "weights": values, "version_key": version_key})
    report(f"set weights of {key.ss58_address} on subnet {netuid}: "
           + ", ".join(f"{u}={v}" for u, v in zip(uid_list, values, strict=True)),
           receipt, as_json, uids=uid_list, weights=values)


def _rejected(exc: LedgerClientError) -> bool:
    """The ledger certainly did not record the extrinsic (refused, or failed in a block);
    after a timeout or a lost connection it may have, so the salt must be kept."""
    return isinstance(exc, LedgerError) and exc.code not in ("timeout", "bad_response")


def _reveal_epoch(client: LedgerClient, netuid: int, block: int) -> int:
    """The epoch in which a commit included in ``block`` must be revealed."""
    info = client.subnet(netuid)
    hp = info["hyperparameters"]
    epoch = epoch_at_block(int(info["epochs_run"]), int(info["last_epoch_block"]),
                           int(hp["tempo"]), block)
    return epoch + int(hp["commit_reveal_period"])


@weights_app.command("commit", cls=OneLineCommand)
def weights_commit(
    netuid: Netuid, uids: Uids, weights: Weights, version_key: VersionKey = 0,
    name: SignerWallet = None, hotkey: HotkeyName = "default", dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False,
) -> None:
    """Commit a hash of weights (commit-reveal subnets); the salt is saved for the reveal."""
    uid_list, values = checked(weight_vector, uids, weights)
    key = signer(name, dev_key).hotkey(hotkey)
    with ledger_session(ledger, "weights commit refused") as client:
        record = new_commit(client.genesis_hash(), key.ss58_address, netuid, uid_list, values,
                            version_key)
        # Saved before submitting: a commit whose salt is lost can never be revealed.
        path = checked(save, record)
        try:
            receipt = submit(client, key, "commit_weights",
                             {"netuid": netuid, "commit_hash": record.commit_hash})
        except LedgerClientError as exc:
            if _rejected(exc):
                discard(record)
            raise
        block = int(receipt["block"])
        record = record.included(block, _reveal_epoch(client, netuid, block))
        checked(save, record)
    report(f"committed {record.commit_hash} on subnet {netuid} in block {block}; reveal it in "
           f"epoch {record.reveal_epoch} with `subnetlab weights reveal --netuid {netuid} "
           f"--wait` (salt saved in {path})",
           receipt, as_json, commit_hash=record.commit_hash, reveal_epoch=record.reveal_epoch,
           saved=str(path))


def _deadline(client: LedgerClient, netuid: int, target: int | None,
              timeout: float | None) -> float:
    """When `--wait` gives up: ``timeout``, else twice the chain's own schedule + 30 s."""
    if timeout is None:
        chain, info = client.chain(), client.subnet(netuid)
        hp = info["hyperparameters"]
        blocks = (
            blocks_until_epoch(target, int(info["epochs_run"]), int(info["next_epoch_block"]),
                               int(chain["block"]), int(hp["tempo"]))
            if target is not None
            else int(hp["tempo"]) * int(hp["commit_reveal_period"])
        )
        timeout = 2 * (blocks + 2) * float(chain["block_time"]) + 30
    return time.monotonic() + timeout


def _wait_for_epoch(client: LedgerClient, netuid: int, target: int, deadline: float) -> None:
    """Sleep until the subnet has run ``target`` epochs (a spinner says how far it is)."""
    poll = min(float(client.chain()["block_time"]), _POLL_S)
    with progress(f"waiting for epoch {target} of subnet {netuid}") as status:
        while (now := int(client.subnet(netuid)["epochs_run"])) < target:
            if time.monotonic() > deadline:
                fail(f"--wait: subnet {netuid} is at epoch {now}, not yet {target}, and the "
                     "wait timed out (raise --timeout)")
            status.update(f"waiting for epoch {target} of subnet {netuid} (now {now})")
            time.sleep(poll)


def _reveal(client: LedgerClient, key: Keypair, record: SavedCommit,
            deadline: float | None) -> Json:
    """Submit the reveal; with a deadline, retry while the chain says it is too early
    (the reveal epoch is an estimate when the tempo changed since the commit)."""
    while True:
        try:
            return submit(client, key, "reveal_weights", record.reveal_params())
        except LedgerError as exc:
            if exc.code == "reveal_too_late":
                discard(record)
                fail(f"weights reveal refused: {exc}; the saved commit can never be revealed "
                     "now and was removed")
            if exc.code != "reveal_too_early" or deadline is None:
                raise
            if time.monotonic() > deadline:
                fail(f"--wait: still too early to reveal when the wait timed out: {exc}")
            with progress("weights reveal: too early, waiting for the next block"):
                time.sleep(min(float(client.chain()["block_time"]), _POLL_S))


@weights_app.command("reveal", cls=OneLineCommand)
def weights_reveal(
    netuid: Netuid,
    commit: Annotated[
        str | None, typer.Option("--commit", help="Commit hash to reveal (when several).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the reveal epoch, then reveal.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds --wait may take (default: from the "
                     "subnet's schedule).", min=0),
    ] = None,
    name: SignerWallet = None, hotkey: HotkeyName = "default", dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False,
) -> None:
    """Reveal weights committed earlier with `weights commit` (in the reveal epoch)."""
    key = signer(name, dev_key).hotkey(hotkey)
    with ledger_session(ledger, "weights reveal refused") as client:
        saved = saved_commits(client.genesis_hash(), key.ss58_address, netuid)
        record = checked(pick, saved, commit, netuid)
        deadline = None
        if wait:
            deadline = _deadline(client, netuid, record.reveal_epoch, timeout)
            if record.reveal_epoch is not None:
                _wait_for_epoch(client, netuid, record.reveal_epoch, deadline)
        receipt = _reveal(client, key, record, deadline)
    discard(record)
    report(f"revealed {record.commit_hash} on subnet {netuid}", receipt, as_json,
           commit_hash=record.commit_hash)


@weights_app.command("pending", cls=OneLineCommand)
def weights_pending(
    netuid: Netuid,
    of: Annotated[
        str | None, typer.Option("--address", metavar="SS58",
                                 help="Only this hotkey's commits.")
    ] = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False,
) -> None:
    """Weight commits on chain still waiting for their reveal (commit-reveal subnets)."""
    from rich.table import Table

    if of is not None:
        check_address(of, "--address")
    with ledger_session(ledger, f"commits on subnet {netuid}") as client:
        commits = client.commits(netuid, hotkey=of)
        epoch = int(client.subnet(netuid)["epochs_run"])
    if as_json:
        print_json({"netuid": netuid, "epoch": epoch, "commits": commits})
        return
    if not commits:
        console.print(f"no weight commits waiting for a reveal on subnet {netuid}", markup=False)
        return
    table = Table(title=f"subnet {netuid}: commits to reveal (now epoch {epoch})")
    for column in ("hotkey", "hash", "block", "epoch", "reveal in epoch"):
        table.add_column(column, justify="left" if column in ("hotkey", "hash") else "right")
    for c in commits:
        due = int(c["reveal_epoch"])
        when = f"{due} (now)" if due == epoch else str(due)
        table.add_row(c["hotkey"], c["hash"][:18] + "…", str(c["block"]), str(c["epoch"]), when)
    print_table(table)
