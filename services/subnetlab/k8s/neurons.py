"""Reconciling a Neuron: keys, registration and stake on the ledger, its Deployment and
Service, and a status read back from the metagraph; and letting one go.

Every step first looks at what exists (the Secret, the metagraph row, the owner's stake
position, the applied objects) and changes only what differs, so a pass can be repeated
any number of times (timer, retry, operator restart) without duplicating anything.

A sybil miner (`spec.miner.sybilHotkeys: N`) holds N further hotkeys, kept in its key
Secret beside its own: each is registered (paid by the owner, never staked: `spec.stake`
goes to the neuron's own hotkey), its uid listed in `status.sybilUids`, and its file
mounted for the miner's `--sybil-key`. Hotkeys the spec no longer asks for are released
(as on deletion) before their entries leave the Secret.

Deletion: the finalizer returns the owner's stake on the hotkey (`remove_stake`), then
deregisters the hotkey, which leaves its uid vacant and returns, in the same block, any
stake that reached the hotkey since (an epoch's dividends, a nominator's position); a
sybil's further hotkeys (those in status and those in the Secret) go the same way. The
pods, Service, key Secret and a validator's copy of the gateway keys go with the Neuron
through their owner references; one log line per deletion says what was released.
"""

from __future__ import annotations

import logging
from typing import Any

from subnetlab.chain.units import rao
from subnetlab.k8s.context import Body, Fail, Operator, Retry, meta, parse_resource
from subnetlab.k8s.gateway import MISSING_REASON, gateway_secret_name
from subnetlab.k8s.keys import KeyMaterialError, neuron_secret_name, stored_sybil_keys
from subnetlab.k8s.kube import KubeError
from subnetlab.k8s.logs import log_deleted
from subnetlab.k8s.plan import (
    cluster_backend_problem,
    is_temporary,
    stake_change,
)
from subnetlab.k8s.resources import (
    NeuronWorkload,
    deployment,
    labels_for,
    owner_reference,
    service,
)
from subnetlab.k8s.status import (
    NEURON_CONDITIONS,
    Conditions,
    deployment_availability,
    metagraph_fields,
    sybil_fields,
)
from subnetlab.k8s.subnets import parse_subnet
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerError, LedgerUnreachable, format_rao
from subnetlab.ledger.documents import neuron_row, stake_position
from subnetlab.neuron.command import sybil_count
from subnetlab.specs import Neuron, Subnet

Json = dict[str, Any]
LEDGER_CONDITIONS = ("Registered", "Staked")
GONE_CODES = frozenset({"not_registered", "unknown_subnet"})
"""Deregistration refusals that mean the work is already done (a finalizer that ran before,
a subnet the ledger no longer has): the Neuron is released without a Warning."""


def parse_neuron(body: Body) -> Neuron:
    """The stored Neuron as its spec model, or Fail (InvalidSpec) naming the field."""
    return parse_resource(Neuron, body)


async def _subnet_of(op: Operator, body: Body, neuron: Neuron,
                     retry: int) -> tuple[Body, Subnet, int]:
    """The Neuron's Subnet resource, its spec and netuid; Retry while it is not ready."""
    _, namespace, _, _ = meta(body)
    wanted = neuron.spec.subnet
    subnet_body = await op.kube.get("Subnet", namespace, wanted)
    if subnet_body is None:
        raise Retry("SubnetNotFound", f"no Subnet {namespace}/{wanted} (spec.subnet)",
                    op.backoff(retry))
    try:
        subnet = parse_subnet(subnet_body)
    except Fail as failure:
        raise Retry("SubnetNotReady", f"Subnet {wanted} is invalid: {failure.message}",
                    op.backoff(retry)) from None
    netuid = (subnet_body.get("status") or {}).get("netuid")
    if netuid is None:
        raise Retry("SubnetNotReady", f"Subnet {wanted} has no netuid on the ledger yet",
                    op.backoff(retry))
    return subnet_body, subnet, int(netuid)


async def _owned_by_subnet(op: Operator, body: Body, subnet_body: Body) -> None:
    """Make the Subnet an owner of the Neuron, so deleting the Subnet removes it."""
    refs = list(body["metadata"].get("ownerReferences") or [])
    subnet_uid = subnet_body["metadata"]["uid"]
    if any(ref.get("uid") == subnet_uid for ref in refs):
        return
    ref = owner_reference(subnet_body)
    ref["controller"] = not any(r.get("controller") for r in refs)
    name, namespace, _, _ = meta(body)
    await op.kube.merge_patch("Neuron", namespace, name,
                              {"metadata": {"ownerReferences": [*refs, ref]}})


async def _ensure_registered(op: Operator, body: Body, netuid: int, owner: Keypair,
                             hotkey: Keypair, label: str = "") -> Json:
    """The hotkey's metagraph row, registering it (paid by the owner) when it has none;
    `label` ("sybil hotkey 2: ") begins the event's message."""
    row = neuron_row(await _metagraph(op, netuid), hotkey.ss58_address)
    if row is not None:
        return row
    try:
        await op.submit(owner, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    except LedgerError as exc:
        if exc.code != "already_registered":
            raise
    row = neuron_row(await _metagraph(op, netuid), hotkey.ss58_address)
    if row is None:
        raise Retry("RegistrationPending", "register was included but the hotkey has no uid "
                    "in the metagraph yet", 1.0)
    op.event(body, "Normal", "Registered", f"{label}uid {row['uid']} on netuid {netuid}")
    return row


async def _metagraph(op: Operator, netuid: int) -> Json:
    try:
        return await op.ledger.metagraph(netuid)
    except LedgerError as exc:
        if exc.code == "unknown_subnet":
            raise Retry("SubnetNotReady", f"netuid {netuid} is not on the ledger", 2.0) from None
        raise


async def _ensure_stake(op: Operator, body: Body, owner: Keypair, hotkey: Keypair,
                        desired: int, exact: bool) -> int:
    """Bring the owner's stake position on the hotkey to `desired` rao (see
    `plan.stake_change`); the position afterwards."""
    account = await op.ledger.account(owner.ss58_address)
    current = stake_position(account, hotkey.ss58_address)
    change = stake_change(desired, current, exact)
    if change is None:
        return current
    await op.submit(owner, change.call, {"hotkey": hotkey.ss58_address, "amount": change.amount})
    verb = "Staked" if change.call == "add_stake" else "Unstaked"
    op.event(body, "Normal", verb, f"{format_rao(change.amount)} tokens "
             f"({format_rao(desired)} now staked by {owner.ss58_address})")
    return desired


async def reconcile_neuron(op: Operator, body: Body, retry: int, exact_stake: bool) -> None:
    """One pass; raises Retry or Fail after writing a status that says why.

    `exact_stake`: the spec's stake was just changed, so set the position to it exactly
    (otherwise a position grown by dividends is left alone).
    """
    name, namespace, _, generation = meta(body)
    conditions = Conditions((body.get("status") or {}).get("conditions", []), generation,
                            op.now, NEURON_CONDITIONS)
    patch: Json = {}
    try:
        neuron = parse_neuron(body)
        spec = neuron.spec
        if problem := cluster_backend_problem(spec):
            raise Fail("InvalidSpec", problem)
        subnet_body, subnet, netuid = await _subnet_of(op, body, neuron, retry)
        await _owned_by_subnet(op, body, subnet_body)
        secret = neuron_secret_name(name)
        hotkey = await op.keyed(spec.wallet, "spec.wallet", secret, namespace, body,
                                labels_for(name, spec.subnet, spec.role))
        sybils = await op.sybil_keys(spec.wallet, sybil_count(spec), secret, namespace)
        more = f" and {len(sybils.keys)} sybil hotkeys" if sybils.keys else ""
        gateway = None
        if spec.role == "validator":  # its gateway's API keys, copied into its namespace
            gateway = await op.gateway_keys(body, name, namespace,
                                            labels_for(name, spec.subnet, spec.role))
            more += (f"; gateway keys from {gateway.source.split('@')[0]} in Secret "
                     f"{gateway_secret_name(name)}")
        if gateway is not None and gateway.problem:
            conditions.set("KeysReady", "False", MISSING_REASON, gateway.problem)
        else:
            conditions.set("KeysReady", "True", "SecretReady",
                           f"hotkey {hotkey.ss58_address}{more} in Secret {secret}")
        owner = await op.owner_key(subnet_body, subnet)
        patch.update(hotkey=hotkey.ss58_address, coldkey=owner.ss58_address, netuid=netuid,
                     **sybil_fields(sybils.addresses, []))
        row = await _ensure_registered(op, body, netuid, owner, hotkey)
        sybil_rows = [await _ensure_registered(op, body, netuid, owner, key,
                                               f"sybil hotkey {i}: ")
                      for i, key in enumerate(sybils.keys, 1)]
        known = _known_uids(body)
        for surplus in sybils.surplus.values():  # no longer asked for: released first
            await _release(op, body, owner, surplus.ss58_address, netuid,
                           known.get(surplus.ss58_address), "sybil hotkey")
        more = f"; sybil uids {[r['uid'] for r in sybil_rows]}" if sybil_rows else ""
        conditions.set("Registered", "True", "Registered",
                       f"uid {row['uid']} on netuid {netuid}{more}")
        staked = await _ensure_stake(op, body, owner, hotkey, rao(spec.stake), exact_stake)
        conditions.set("Staked", "True", "Staked",
                       f"{format_rao(staked)} tokens staked by {owner.ss58_address}")
        metagraph = await _metagraph(op, netuid)
        row = neuron_row(metagraph, hotkey.ss58_address) or row
        sybil_uids = [int((neuron_row(metagraph, key.ss58_address) or ensured)["uid"])
                      for key, ensured in zip(sybils.keys, sybil_rows, strict=True)]
        op.metrics.ledger_up.set(1)
        workload = NeuronWorkload(name, namespace, spec.subnet, spec, subnet.spec.tasks, netuid,
                                  hotkey.ss58_address, secret, owner_reference(body), op.config,
                                  tuple(sybils.addresses), gateway.source if gateway else "")
        await op.kube.apply(service(workload))
        applied = await op.kube.apply(deployment(workload))
        await op.drop_secret_keys(secret, namespace, list(sybils.surplus))
        conditions.set("Available", *deployment_availability(applied.get("status")))
        if all(conditions.is_true(t) for t in NEURON_CONDITIONS[:-1]):
            conditions.set("Ready", "True", "Ready", f"uid {row['uid']} serving at "
                           f"{workload.endpoint}")
        else:
            first = next(c for c in conditions.items if c["type"] != "Ready"
                         and c["status"] != "True")
            conditions.set("Ready", "False", first["reason"], first.get("message", ""))
        patch.update(metagraph_fields(row), **sybil_fields(sybils.addresses, sybil_uids),
                     endpoint=workload.endpoint, lastSync=op.now(),
                     observedGeneration=generation)
        await op.write_status(body, {**patch, "conditions": conditions.items})
    except Fail as failure:
        conditions.set("Ready", "False", failure.reason, failure.message)
        await op.write_status(body, {**patch, "observedGeneration": generation,
                                     "conditions": conditions.items})
        op.event(body, "Warning", failure.reason, failure.message)
        raise
    except (LedgerUnreachable, LedgerError, Retry, KubeError) as exc:
        outcome = op.outcome(exc, retry)
        if isinstance(exc, LedgerUnreachable):
            op.metrics.ledger_up.set(0)
            for type_ in LEDGER_CONDITIONS:
                if conditions.is_true(type_):  # was true; cannot be checked right now
                    conditions.set(type_, "Unknown", "LedgerUnreachable", outcome.message)
        conditions.set("Ready", "False", outcome.reason, outcome.message)
        if isinstance(outcome, Fail):  # settled for this generation: the timer leaves it
            patch["observedGeneration"] = generation
            op.event(body, "Warning", outcome.reason, outcome.message)
        await op.write_status(body, {**patch, "conditions": conditions.items})
        raise outcome from None


def _known_uids(body: Body) -> dict[str, int | None]:
    """Hotkey -> uid, as the Neuron's status last recorded them (the neuron's own hotkey
    and a sybil's further ones)."""
    status = body.get("status") or {}
    known: dict[str, int | None] = {str(status.get("hotkey")): status.get("uid")}
    known.update(zip(status.get("sybilHotkeys") or [], status.get("sybilUids") or [],
                     strict=False))
    return known


async def _release(op: Operator, body: Body, owner: Keypair, hotkey: str, netuid: int,
                   uid: int | None, what: str = "hotkey") -> Json:
    """Unstake the owner's position on the hotkey, then deregister it (see the module doc);
    each step is skipped when already done, so a retried finalizer repeats nothing. `uid`
    (as status last saw it) and `what` only word the events. What this pass did, for the
    deletion's log line: hotkey, uid, the rao unstaked, and `deregistered` (false: it held
    no uid any more)."""
    done: Json = {"hotkey": hotkey, "uid": uid, "unstaked_rao": 0, "deregistered": True}
    position = stake_position(await op.ledger.account(owner.ss58_address), hotkey)
    if position:
        await op.submit(owner, "remove_stake", {"hotkey": hotkey, "amount": position})
        op.event(body, "Normal", "Unstaked", f"{format_rao(position)} tokens returned to "
                 f"{owner.ss58_address}")
        done["unstaked_rao"] = position
    try:
        await op.submit(owner, "deregister", {"netuid": netuid, "hotkey": hotkey})
    except LedgerError as exc:
        if exc.code not in GONE_CODES:
            raise
        op.event(body, "Normal", "Deregistered", f"{what} {hotkey} holds no uid on netuid "
                 f"{netuid} any more ({exc.code})")
        return {**done, "deregistered": False}
    op.event(body, "Normal", "Deregistered", f"{what} {hotkey} left netuid {netuid}: uid "
             f"{uid} is vacant, and any stake still on the hotkey is back with its stakers")
    return done


async def _sybil_hotkeys(op: Operator, name: str, namespace: str, status: Json) -> list[str]:
    """A sybil's further hotkeys to release: those in status, and any in the key Secret
    that status never recorded (an operator stopped between writing one and the status)."""
    secret = neuron_secret_name(name)
    found = await op.kube.get("Secret", namespace, secret)
    try:
        stored = stored_sybil_keys((found or {}).get("data"), f"Secret {namespace}/{secret}")
    except KeyMaterialError:  # a damaged entry: status still names what was registered
        stored = {}
    return list(dict.fromkeys([*(status.get("sybilHotkeys") or []),
                               *(key.ss58_address for key in stored.values())]))


async def delete_neuron(op: Operator, body: Body, retry: int, runtime: float) -> None:
    """The finalizer: unstake and deregister on the ledger, then let the object go.

    An unreachable ledger is retried with backoff for `delete_give_up_s`; after that the
    finalizer gives up with a Warning event (the uid and the stake stay where they are)
    rather than keeping the Neuron, and its namespace, stuck forever.
    """
    name, namespace, uid, _ = meta(body)
    status = body.get("status") or {}
    hotkey, netuid = status.get("hotkey"), status.get("netuid")
    if hotkey is None or netuid is None:
        log_deleted(body, "it was never registered: nothing to release on the ledger",
                    {"outcome": "nothing"})
        op.forget(uid)
        return
    subnet_name = (body.get("spec") or {}).get("subnet", "")
    subnet_body = await op.kube.get("Subnet", namespace, subnet_name)
    owner = None
    if subnet_body is not None:
        try:
            owner = await op.existing_owner_key(subnet_body, parse_subnet(subnet_body))
        except Fail:
            owner = None
    known = _known_uids(body)
    kept = {"outcome": "kept", "netuid": int(netuid), "hotkey": str(hotkey),
            "uid": known.get(str(hotkey))}
    if owner is None:
        op.event(body, "Warning", "OwnerKeyGone", f"Subnet {subnet_name} or its owner key is "
                 f"gone: the uid and the stake of {hotkey} stay on the ledger")
        log_deleted(body, f"Subnet {subnet_name} or its owner key is gone: uid "
                    f"{kept['uid']} and the stake of {hotkey} stay on netuid {netuid}", kept,
                    logging.WARNING)
        op.forget(uid)
        return
    released: list[Json] = []
    try:
        released.append(await _release(op, body, owner, str(hotkey), int(netuid),
                                       known.get(str(hotkey))))
        for sybil in await _sybil_hotkeys(op, name, namespace, status):
            released.append(await _release(op, body, owner, sybil, int(netuid),
                                           known.get(sybil), "sybil hotkey"))
    except (LedgerUnreachable, LedgerError) as exc:
        retriable = isinstance(exc, LedgerUnreachable) or is_temporary(exc)
        if retriable and runtime < op.config.delete_give_up_s:
            raise Retry("LedgerUnreachable" if isinstance(exc, LedgerUnreachable)
                        else "LedgerBusy", str(exc), op.backoff(retry)) from None
        op.event(body, "Warning", "GaveUp", f"could not unstake and deregister {hotkey} "
                 f"({exc}); after {runtime:.0f}s the Neuron is released anyway and its uid "
                 "and stake stay on the ledger")
        log_deleted(body, f"gave up after {runtime:.0f}s ({exc}): uid {kept['uid']} and the "
                    f"stake of {hotkey} stay on netuid {netuid}",
                    {**kept, "outcome": "gave_up", "released": released}, logging.WARNING)
        op.forget(uid)
        return
    log_deleted(body, released_summary(int(netuid), released),
                {"outcome": "released", "netuid": int(netuid), "hotkeys": released})
    op.forget(uid)


def released_summary(netuid: int, released: list[Json]) -> str:
    """The deletion line's words: each hotkey's uid, the stake returned, sybils counted."""
    own, sybils = released[0], released[1:]
    unstaked = format_rao(sum(int(r["unstaked_rao"]) for r in released))
    what = (f"hotkey {own['hotkey']} (uid {own['uid']}) left netuid {netuid}"
            if own["deregistered"] else
            f"hotkey {own['hotkey']} held no uid on netuid {netuid} any more")
    more = f", with {len(sybils)} sybil hotkeys" if sybils else ""
    return f"{what}{more}; {unstaked} tokens of stake returned to the owner"
