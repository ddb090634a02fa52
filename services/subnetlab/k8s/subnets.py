"""Reconciling a Subnet: validate, create, bind or adopt it on the ledger, apply its
hyperparameters, report what the ledger says.

Three ways a Subnet resource comes to manage a subnet:
- created: `create_subnet` signed by the owner key;
- bound (`spec.netuid`, immutable): a subnet that already exists on the ledger, after
  checking that the owner key owns it and that no other Subnet resource manages it; a
  check that fails is a permanent error naming `spec.netuid`;
- adopted: creation is made restart-safe without any help from the ledger: before
  `create_subnet` is sent, the ledger height is written to `status.creationStartedAtBlock`;
  an operator that dies between the extrinsic and the status write finds, on resume, the
  subnet that owner created after that height (and no other Subnet resource claims) and
  adopts it.

Deleting a Subnet never touches the subnet itself (the chain cannot dissolve one): its
Neurons are deleted (their finalizers unstake and deregister them) and the subnet stays,
with its owner, hyperparameters and any uid registered from outside the cluster; a new
Subnet with `spec.netuid` can bind it again.
"""

from __future__ import annotations

from typing import Any

from subnetlab.k8s.context import Body, Fail, Operator, Retry, meta, parse_resource
from subnetlab.k8s.keys import owner_secret_name
from subnetlab.k8s.kube import KubeError
from subnetlab.k8s.logs import log_deleted
from subnetlab.k8s.plan import binding_problem, hyperparameter_changes, netuid_claimant
from subnetlab.k8s.status import SUBNET_CONDITIONS, Conditions, subnet_fields
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerError, LedgerUnreachable
from subnetlab.local.bootstrap import created_subnet
from subnetlab.specs import Subnet

Json = dict[str, Any]


def parse_subnet(body: Body) -> Subnet:
    """The stored Subnet as its spec model, or Fail (InvalidSpec) naming the field."""
    return parse_resource(Subnet, body)


async def reconcile_subnet(op: Operator, body: Body, include_burn: bool, retry: int) -> None:
    """One pass; raises Retry or Fail after writing a status that says why."""
    generation = meta(body).generation
    conditions = Conditions((body.get("status") or {}).get("conditions", []), generation,
                            op.now, SUBNET_CONDITIONS)
    try:
        subnet = parse_subnet(body)
        owner = await _owner_key(op, body, subnet, retry)
        info = await (_bind(op, body, subnet, owner, conditions)
                      if subnet.spec.netuid is not None
                      else _ensure_subnet(op, body, subnet, owner, conditions))
        changes = hyperparameter_changes(subnet.spec.hyperparameters, info["hyperparameters"],
                                         include_burn)
        if changes:
            await op.submit(owner, "set_hyperparameters",
                            {"netuid": int(info["netuid"]), **changes})
            op.event(body, "Normal", "HyperparametersSet",
                     f"set {', '.join(sorted(changes))} on netuid {info['netuid']}")
            info = await op.ledger.subnet(int(info["netuid"])) or info
        conditions.set("HyperparametersSynced", "True", "Synced",
                       "the ledger has the spec's hyperparameters")
        metagraph = await op.ledger.metagraph(int(info["netuid"]))
        block = await op.ledger.latest_block()
        conditions.set("Ready", "True", "Ready", f"netuid {info['netuid']} on {op.ledger.url}")
        op.metrics.ledger_up.set(1)
        await op.write_status(body, {**subnet_fields(info, metagraph, block),
                                     "creationStartedAtBlock": None, "lastSync": op.now(),
                                     "observedGeneration": generation,
                                     "conditions": conditions.items})
    except Fail as failure:
        conditions.set("Ready", "False", failure.reason, failure.message)
        await op.write_status(body, {"observedGeneration": generation,
                                     "conditions": conditions.items})
        op.event(body, "Warning", failure.reason, failure.message)
        raise
    except (LedgerUnreachable, LedgerError, Retry, KubeError) as exc:
        outcome = op.outcome(exc, retry)
        if isinstance(exc, LedgerUnreachable):
            op.metrics.ledger_up.set(0)
            conditions.set("Created", "Unknown", "LedgerUnreachable", outcome.message)
        conditions.set("Ready", "False", outcome.reason, outcome.message)
        patch: Json = {"conditions": conditions.items}
        if isinstance(outcome, Fail):  # settled for this generation: the timer leaves it
            patch["observedGeneration"] = generation
            op.event(body, "Warning", outcome.reason, outcome.message)
        await op.write_status(body, patch)
        raise outcome from None


async def _owner_key(op: Operator, body: Body, subnet: Subnet, retry: int) -> Keypair:
    """The owner's key (see `Operator.owner_key`). Binding an existing subnet needs the key
    that owns it, so there it is never generated: without a dev key, the `<name>-owner`
    Secret must hold it (a mnemonic or seed put there by hand); until it exists, retry."""
    source = subnet.spec.owner
    if subnet.spec.netuid is not None and not source.dev_key and not source.wallet:
        name, namespace, _, _ = meta(body)
        secret = owner_secret_name(name)
        if await op.kube.get("Secret", namespace, secret) is None:
            raise Retry("OwnerKeyMissing", f"spec.netuid: binding netuid {subnet.spec.netuid} "
                        f"needs its owner's key: create Secret {namespace}/{secret} with "
                        "data.mnemonic (or data.seed), or give spec.owner.devKey",
                        op.backoff(retry))
    return await op.owner_key(body, subnet)


async def _claimed_netuids(op: Operator, body: Body) -> set[int]:
    """Netuids other Subnet resources already hold or bind (any namespace)."""
    uid = meta(body).uid
    claimed: set[int] = set()
    for other in await op.kube.list("Subnet"):
        if other["metadata"]["uid"] != uid:
            for part in ("status", "spec"):
                netuid = (other.get(part) or {}).get("netuid")
                if netuid is not None:
                    claimed.add(int(netuid))
    return claimed


async def _bind(op: Operator, body: Body, subnet: Subnet, owner: Keypair,
                conditions: Conditions) -> Json:
    """The ledger's view of the existing subnet `spec.netuid`, once it is checked to be the
    owner key's and no other resource's; Fail naming `spec.netuid` otherwise."""
    assert subnet.spec.netuid is not None
    netuid = subnet.spec.netuid
    info = await op.ledger.subnet(netuid)
    m = body["metadata"]
    claimant = netuid_claimant(netuid, str(m["uid"]), str(m.get("creationTimestamp") or ""),
                               await op.kube.list("Subnet"))
    problem = binding_problem(netuid, info, owner.ss58_address, claimant, op.ledger.url)
    recorded = (body.get("status") or {}).get("netuid")
    if problem is not None:
        conditions.set("Created", "False", *problem)
        if recorded is not None:  # its Neurons must not go on using a subnet it lost
            await op.write_status(body, {"netuid": None})
        raise Fail(*problem)
    assert info is not None
    if recorded != netuid:
        await op.write_status(body, {"netuid": netuid, "creationStartedAtBlock": None})
        op.event(body, "Normal", "Bound", f"bound to the existing netuid {netuid} on "
                 f"{op.ledger.url}, owned by {owner.ss58_address}")
    conditions.set("Created", "True", "Bound", f"netuid {netuid} (spec.netuid), owned by "
                   f"{owner.ss58_address}")
    return info


async def _ensure_subnet(op: Operator, body: Body, subnet: Subnet, owner: Keypair,
                         conditions: Conditions) -> Json:
    """The ledger's view of this Subnet's subnet: known, recovered, or newly created."""
    status = body.get("status") or {}
    known = status.get("netuid")
    if known is not None:
        info = await op.ledger.subnet(int(known))
        if info is not None and info["owner"] == owner.ss58_address:
            conditions.set("Created", "True", "Created", f"netuid {known}")
            return info
        op.event(body, "Warning", "SubnetLost",
                 f"netuid {known} is not on the ledger (or has another owner): creating anew")
    started = status.get("creationStartedAtBlock")
    if started is not None:
        found = created_subnet(await op.ledger.subnets(), owner.ss58_address, int(started),
                               await _claimed_netuids(op, body))
        if found is not None:
            info = await op.ledger.subnet(found)
            if info is not None:
                op.event(body, "Normal", "Adopted", f"adopted netuid {found}, created by an "
                         "earlier pass that did not live to record it")
                conditions.set("Created", "True", "Adopted", f"netuid {found}")
                await op.write_status(body, {"netuid": found})
                return info
    block = await op.ledger.latest_block()
    await op.write_status(body, {"creationStartedAtBlock": block})
    hyperparameters = subnet.spec.hyperparameters.model_dump(mode="json")
    await op.submit(owner, "create_subnet", {"hyperparameters": hyperparameters})
    found = created_subnet(await op.ledger.subnets(), owner.ss58_address, block,
                           await _claimed_netuids(op, body))
    info = None if found is None else await op.ledger.subnet(found)
    if info is None:
        raise Retry("CreatePending", "create_subnet was included but its subnet is not "
                    "visible yet", 1.0)
    await op.write_status(body, {"netuid": found, "creationStartedAtBlock": None})
    op.event(body, "Normal", "Created", f"created netuid {found} on {op.ledger.url}")
    conditions.set("Created", "True", "Created", f"netuid {found}")
    return info


async def delete_subnet(op: Operator, body: Body) -> None:
    """Before a Subnet goes: delete its Neurons and wait until their finalizers are done
    (they need the Subnet's owner key to unstake). The subnet stays on the ledger: the
    chain has no way to dissolve one."""
    name, namespace, uid, _ = meta(body)
    left = [n for n in await op.kube.list("Neuron", namespace)
            if (n.get("spec") or {}).get("subnet") == name]
    for neuron in left:
        if not neuron["metadata"].get("deletionTimestamp"):
            await op.kube.delete("Neuron", namespace, neuron["metadata"]["name"])
    if left:
        raise Retry("WaitingForNeurons", f"{len(left)} Neuron(s) of this subnet are still "
                    "being removed", 2.0)
    netuid = (body.get("status") or {}).get("netuid")
    if netuid is not None:
        op.event(body, "Normal", "Released", f"netuid {netuid} stays on the ledger with its "
                 "owner and hyperparameters (subnets cannot be dissolved); this resource's "
                 "Neurons are deregistered, uids registered elsewhere stay")
        owner = (body.get("status") or {}).get("owner")
        log_deleted(body, f"netuid {netuid} released: it stays on the ledger with its owner "
                    f"{owner} and hyperparameters, its Neurons deregistered; a Subnet with "
                    f"spec.netuid: {netuid} can manage it again",
                    {"outcome": "released", "netuid": int(netuid), "owner": owner})
    else:
        log_deleted(body, "no subnet was created on the ledger: nothing to release",
                    {"outcome": "nothing"})
    op.forget(uid)
