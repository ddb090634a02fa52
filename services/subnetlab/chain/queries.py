"""Read-only views of the state for the ledger's API (plain JSON-ready dicts)."""

from __future__ import annotations

from typing import Any

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.faucet import minted_in_block, minted_in_window, pow_active, window_start
from subnetlab.chain.model import ChainState, Subnet
from subnetlab.chain.weights import live_commits


def _subnet(state: ChainState, netuid: int) -> Subnet:
    subnet = state.subnets.get(netuid)
    if subnet is None:
        raise ChainError(ErrorCode.UNKNOWN_SUBNET, f"subnet {netuid} does not exist", "netuid")
    return subnet


def metagraph(state: ChainState, netuid: int) -> list[dict[str, Any]]:
    """Per uid: identity, stake (rao, total on the hotkey), the last epoch's outputs, axon.

    Every uid has a row, vacant ones included (`vacant: true`, `hotkey`, `coldkey` and
    `take` null, everything else zero), so a row's index is its uid. Consumers that pick
    hotkeys to call or trust skip vacant rows.
    """
    subnet = _subnet(state, netuid)
    nrn = subnet.neurons
    rows: list[dict[str, Any]] = []
    for uid, hotkey in enumerate(nrn.hotkeys):
        axon = nrn.axons[uid]
        rows.append(
            {
                "uid": uid,
                "hotkey": hotkey,
                "coldkey": nrn.coldkeys[uid],
                "vacant": hotkey is None,
                "stake": 0 if hotkey is None else state.total_stake(hotkey),
                "stake_share": float(nrn.stake_share[uid]),
                "incentive": float(nrn.incentive[uid]),
                "dividends": float(nrn.dividends[uid]),
                "emission": int(nrn.emission[uid]),
                "consensus": float(nrn.consensus[uid]),
                "validator_trust": float(nrn.validator_trust[uid]),
                "trust": float(nrn.trust[uid]),
                "rank": float(nrn.rank[uid]),
                "validator_permit": bool(nrn.validator_permit[uid]),
                "active": bool(nrn.active[uid]),
                "pruning_score": int(nrn.pruning_score[uid]),
                "last_update": int(nrn.last_update[uid]),
                "block_at_registration": int(nrn.block_at_registration[uid]),
                "take": None if hotkey is None else state.hotkeys[hotkey].take,
                "axon": None if axon is None else axon.to_dict(),
            }
        )
    return rows


def pending_commits(state: ChainState, netuid: int, hotkey: str | None = None
                    ) -> list[dict[str, Any]]:
    """Weight commits on a subnet that can still be revealed, by hotkey, oldest first.

    Each: the committing `hotkey`, the commit `hash`, the `block` and `epoch` it was made
    in, and the `reveal_epoch` the chain accepts its reveal in. A validator that restarted
    reads its own here to know which reveals it still owes (the salts are in its evidence).
    """
    subnet = _subnet(state, netuid)
    period = subnet.hyperparameters.commit_reveal_period
    return [
        {"hotkey": origin, "hash": commit.hash, "block": commit.block, "epoch": commit.epoch,
         "reveal_epoch": commit.epoch + period}
        for (origin, net), commits in sorted(state.commits.items())
        if net == netuid and hotkey in (None, origin)
        for commit in live_commits(subnet, commits)
    ]


def account(state: ChainState, address: str) -> dict[str, Any]:
    """Balance, nonce, stake positions held by this coldkey, and hotkeys it owns."""
    acct = state.accounts.get(address)
    positions = [
        {"hotkey": hotkey, "amount": by_coldkey[address]}
        for hotkey, by_coldkey in sorted(state.stake.items())
        if by_coldkey.get(address)
    ]
    owned = sorted(hk for hk, info in state.hotkeys.items() if info.owner == address)
    return {
        "address": address,
        "balance": acct.balance if acct else 0,
        "nonce": acct.nonce if acct else 0,
        "last_faucet": acct.last_faucet if acct and acct.last_faucet >= 0 else None,
        "stake": positions,
        "total_stake": sum(p["amount"] for p in positions),
        "hotkeys": owned,
    }


def hotkey_info(state: ChainState, hotkey: str) -> dict[str, Any] | None:
    """Owner, take, total stake, nominators and subnets of a hotkey (None if unknown)."""
    info = state.hotkeys.get(hotkey)
    if info is None:
        return None
    positions = state.stake.get(hotkey, {})
    return {
        "hotkey": hotkey,
        "owner": info.owner,
        "take": info.take,
        "total_stake": sum(positions.values()),
        "nominators": [{"coldkey": ck, "amount": positions[ck]} for ck in sorted(positions)],
        "registrations": [
            {"netuid": netuid, "uid": s.neurons.uid_of[hotkey]}
            for netuid, s in sorted(state.subnets.items())
            if hotkey in s.neurons.uid_of
        ],
    }


def subnet_info(state: ChainState, netuid: int) -> dict[str, Any]:
    """Owner, hyperparameters, size, emission bookkeeping and epoch schedule of a subnet."""
    subnet = _subnet(state, netuid)
    hp = subnet.hyperparameters
    return {
        "netuid": subnet.netuid,
        "owner": subnet.owner,
        "hyperparameters": hp.model_dump(mode="json"),
        "n": subnet.neurons.n,
        "vacant": subnet.neurons.n - subnet.neurons.occupied,
        "max_allowed_uids": hp.max_allowed_uids,
        "burn": hp.burn,
        "lock": subnet.lock,
        "created_at": subnet.created_at,
        "pending_emission": subnet.pending_emission,
        "registrations_this_interval": subnet.registrations_this_interval,
        "registrations_this_block": subnet.registrations_this_block,
        "epochs_run": subnet.epochs_run,
        "last_epoch_block": subnet.last_epoch_block,
        "next_epoch_block": subnet.last_epoch_block + hp.tempo,
        "last_adjustment_block": subnet.last_adjustment_block,
    }


def total_holdings(state: ChainState) -> int:
    """Every rao held anywhere: free + staked + pending emission + subnet locks.

    Equals `state.total_issuance` at all times; the tests assert it after every step.
    """
    free = sum(a.balance for a in state.accounts.values())
    staked = sum(sum(p.values()) for p in state.stake.values())
    subnets = sum(s.pending_emission + s.lock for s in state.subnets.values())
    return free + staked + subnets


def faucet_info(state: ChainState) -> dict[str, Any]:
    """The faucet's settings, what it paid in the open block and interval, and, when it
    asks for a proof of work, the newest block to do it over (what a client solves for)."""
    config = state.faucet
    if config is None:
        return {"enabled": False, "config": None, "block": state.block, "work": None}
    usage = state.faucet_usage
    work = None
    if pow_active(state) and state.block_hashes:
        newest = max(state.block_hashes)
        work = {"block": newest, "block_hash": state.block_hashes[newest],
                "difficulty": config.pow_difficulty, "window_blocks": config.pow_window_blocks}
    return {
        "enabled": state.faucet_enabled,
        "config": config.model_dump(mode="json"),
        "block": state.block,
        "paid_this_block": minted_in_block(usage, state.block),
        "paid_this_interval": minted_in_window(usage, window_start(config, state.block)),
        "work": work,
    }
