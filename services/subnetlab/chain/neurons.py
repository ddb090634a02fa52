"""Neuron calls: register (burned registration with pruning), deregister and serve_axon.

Where a registration goes: the lowest vacant uid (one a deregistration emptied) if there
is one; else a new uid at the end while the subnet has fewer than max_allowed_uids; else
the uid the pruning rule picks.

Pruning rule when a subnet is full: candidates are the uids out of immunity
(``block - block_at_registration >= immunity_period``); the one replaced is the minimum of
``(pruning_score, emission, block_at_registration, uid)``: the lowest pruning score (the
last epoch's emission share, max-upscaled to u16, as subtensor stores it), then the lower
emission in rao, then the oldest registration, then the lowest uid. When every uid is
immune the registration is refused with subnet_full (subtensor would prune an immune uid).

Deregistration (subnetlab's own call: subtensor frees a uid only by pruning it) is signed
by the coldkey that owns the hotkey and empties the uid at once: see `deregister`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from subnetlab.chain.accounts import Effect, require_balance
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import Axon, ChainState, HotkeyInfo, Subnet
from subnetlab.chain.params import Params
from subnetlab.chain.staking import return_stake
from subnetlab.chain.subnets import get_subnet

AXON_PROTOCOLS = ("http", "https")
INTERVAL_REGISTRATION_FACTOR = 3
"""Registrations allowed per adjustment interval, as a multiple of the target (subtensor: 3)."""


def uid_to_prune(subnet: Subnet, block: int) -> int | None:
    """The uid a registration replaces in a full subnet, or None when all are immune."""
    neurons = subnet.neurons
    immunity = subnet.hyperparameters.immunity_period
    best: tuple[int, int, int, int] | None = None
    for uid in range(neurons.n):
        registered = int(neurons.block_at_registration[uid])
        if neurons.hotkeys[uid] is None or block - registered < immunity:
            continue
        key = (int(neurons.pruning_score[uid]), int(neurons.emission[uid]), registered, uid)
        if best is None or key < best:
            best = key
    return None if best is None else best[3]


def _check_registration_rate(subnet: Subnet) -> None:
    hp = subnet.hyperparameters
    if subnet.registrations_this_block >= hp.max_registrations_per_block:
        raise ChainError(
            ErrorCode.TOO_MANY_REGISTRATIONS,
            f"subnet {subnet.netuid} already took {subnet.registrations_this_block} "
            f"registration(s) this block (max_registrations_per_block)",
            "netuid",
        )
    interval_cap = INTERVAL_REGISTRATION_FACTOR * hp.target_registrations_per_interval
    if subnet.registrations_this_interval >= interval_cap:
        raise ChainError(
            ErrorCode.TOO_MANY_REGISTRATIONS,
            f"subnet {subnet.netuid} already took {interval_cap} registrations this "
            f"adjustment interval (3 x target_registrations_per_interval)",
            "netuid",
        )


def register(state: ChainState, origin: str, p: Params) -> Effect:
    """Burn the subnet's current `burn` from the origin coldkey and give `hotkey` a uid
    (the lowest vacant one, else a new one, else a pruned one: see the module doc)."""
    subnet = get_subnet(state, p)
    hotkey = p.address("hotkey")
    p.done()
    neurons = subnet.neurons
    if hotkey in neurons.uid_of:
        raise ChainError(
            ErrorCode.ALREADY_REGISTERED,
            f"{hotkey} already holds uid {neurons.uid_of[hotkey]} on subnet {subnet.netuid}",
            "hotkey",
        )
    info = state.hotkeys.get(hotkey)
    if info is not None and info.owner != origin:
        raise ChainError(ErrorCode.NOT_OWNER, f"{hotkey} belongs to another coldkey", "hotkey")
    _check_registration_rate(subnet)
    burn = subnet.hyperparameters.burn
    require_balance(state, origin, burn, "burn")
    block = state.block
    replace = neurons.first_vacant()
    if replace is None and neurons.n >= subnet.hyperparameters.max_allowed_uids:
        replace = uid_to_prune(subnet, block)
        if replace is None:
            raise ChainError(
                ErrorCode.SUBNET_FULL,
                f"subnet {subnet.netuid} is full and every uid is within its immunity period",
                "netuid",
            )

    def effect() -> dict[str, Any]:
        state.debit(origin, burn)
        state.total_issuance -= burn
        state.total_burned += burn
        if info is None:
            state.hotkeys[hotkey] = HotkeyInfo(owner=origin)
        replaced: str | None = None
        if replace is None:
            uid = neurons.append(hotkey, origin, block)
            subnet.grow()
        else:
            uid = replace
            replaced = neurons.replace(uid, hotkey, origin, block)
            subnet.clear_uid(uid)  # a vacant uid's column may hold weights set since
            if replaced is not None:
                state.commits.pop((replaced, subnet.netuid), None)
        subnet.registrations_this_block += 1
        subnet.registrations_this_interval += 1
        return {"netuid": subnet.netuid, "uid": uid, "burn": burn, "replaced": replaced}

    return effect


def adjusted_burn(hp: Hyperparameters, registrations: int) -> int:
    """Subtensor's burn update: burn * (regs + target) / (2 * target), clamped to bounds.

    Registering more than the target raises the burn, fewer lowers it; exactly the target
    keeps it. Integer division (towards zero) as the chain does it in u64.
    """
    target = hp.target_registrations_per_interval
    burn = hp.burn * (registrations + target) // (2 * target)
    return min(max(burn, hp.min_burn), hp.max_burn)


def maybe_adjust_burn(subnet: Subnet, block: int) -> None:
    """At the first block `adjustment_interval` blocks after the last adjustment: adjust."""
    hp = subnet.hyperparameters
    if block - subnet.last_adjustment_block < hp.adjustment_interval:
        return
    burn = adjusted_burn(hp, subnet.registrations_this_interval)
    if burn != hp.burn:
        subnet.hyperparameters = hp.model_copy(update={"burn": burn})
    subnet.registrations_this_interval = 0
    subnet.last_adjustment_block = block


METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack (link-local too)
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6 (a unique-local address)
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud (shared address space)
})
"""Cloud instance-metadata services: a validator calling one as an axon could hand its
host's credentials to whoever published it, so they are refused wherever they fall."""


def axon_ip_problem(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool
) -> str | None:
    """Why validators must not be sent to `ip`, or None when it may be served on.

    Private addresses (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: pods and local
    networks serve on them. Loopback is allowed only on a chain whose genesis says its
    neurons share one machine (`allow_loopback_axons`). An IPv4-mapped IPv6 address is
    judged as the IPv4 address it carries.
    """
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if mapped is not None:
        return axon_ip_problem(mapped, allow_loopback)
    if ip in METADATA_ADDRESSES:
        return "is a cloud instance-metadata address"
    if ip.is_unspecified:
        return "is the unspecified address; publish the address clients can reach"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_link_local:
        return "is a link-local address (169.254.0.0/16, fe80::/10)"
    if ip.is_loopback:
        if allow_loopback:
            return None
        return ("is a loopback address; this chain's genesis does not allow them "
                "(allow_loopback_axons is for single-machine dev chains)")
    if isinstance(ip, ipaddress.IPv4Address) and ip.is_reserved:  # ::/8 holds ::1
        return "is a reserved address (240.0.0.0/4, broadcast)"
    return None


def _parse_ip(value: str, allow_loopback: bool) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ChainError(
            ErrorCode.INVALID_PARAM, f"{value!r} is not an IPv4 or IPv6 address", "ip"
        ) from None
    problem = axon_ip_problem(ip, allow_loopback)
    if problem is not None:
        raise ChainError(ErrorCode.AXON_IP_NOT_ALLOWED, f"{ip} {problem}", "ip")
    return str(ip)


def registered_uid(subnet: Subnet, hotkey: str, field: str = "origin") -> int:
    """The uid of a hotkey on the subnet, or not_registered naming `field`."""
    uid = subnet.neurons.uid_of.get(hotkey)
    if uid is None:
        raise ChainError(
            ErrorCode.NOT_REGISTERED,
            f"{hotkey} is not registered on subnet {subnet.netuid}",
            field,
        )
    return uid


def deregister(state: ChainState, origin: str, p: Params) -> Effect:
    """Give up `hotkey`'s uid on a subnet; signed by the coldkey that owns the hotkey.

    The uid becomes vacant (see `Neurons.vacate`): no hotkey, no axon, every column zero,
    its weights and bonds rows and columns cleared, the hotkey's pending commits there
    dropped. The hotkey keeps its owner and take, and the evidence it committed stays (it
    is the audit trail of weights already paid for). The registration burn is not refunded.

    Stake: stake belongs to a hotkey, not to a subnet. While the hotkey still holds a uid
    on another subnet its stake keeps backing it there and is left alone; when this was
    its last uid, every position on it (the owner's and its nominators') goes back to the
    free balance of the coldkey that holds it, in this same extrinsic. Nothing is lost,
    nothing can slip in between (an epoch paying dividends into the hotkey after an
    unstake and before the deregistration), and no nominator can block the owner's exit.
    """
    subnet = get_subnet(state, p)
    hotkey = p.address("hotkey")
    p.done()
    uid = registered_uid(subnet, hotkey, "hotkey")
    owner = state.hotkeys[hotkey].owner
    if owner != origin:
        raise ChainError(
            ErrorCode.NOT_OWNER,
            f"{hotkey} belongs to coldkey {owner}; only it may deregister the hotkey",
            "hotkey",
        )
    netuid = subnet.netuid
    last_uid = not any(
        hotkey in other.neurons.uid_of for other in state.subnets.values() if other is not subnet
    )

    def effect() -> dict[str, Any]:
        subnet.neurons.vacate(uid)
        subnet.clear_uid(uid)
        state.commits.pop((hotkey, netuid), None)
        returned = return_stake(state, hotkey) if last_uid else {}
        return {
            "netuid": netuid,
            "uid": uid,
            "hotkey": hotkey,
            "returned": sum(returned.values()),
            "positions": returned,
        }

    return effect


def serve_axon(state: ChainState, origin: str, p: Params) -> Effect:
    """Publish where a neuron serves; signed by the hotkey itself. Addresses validators
    must not be sent to are refused with axon_ip_not_allowed (see `axon_ip_problem`)."""
    subnet = get_subnet(state, p)
    hotkey = p.opt_address("hotkey")
    ip = _parse_ip(p.str_("ip"), state.allow_loopback_axons)
    port = p.int_("port", lo=1, hi=65535)
    protocol = p.str_("protocol", default="http", choices=AXON_PROTOCOLS)
    p.done()
    if hotkey is not None and hotkey != origin:
        raise ChainError(
            ErrorCode.NOT_OWNER, "serve_axon must be signed by the hotkey it serves", "hotkey"
        )
    uid = registered_uid(subnet, origin)
    axon = Axon(ip=ip, port=port, protocol=protocol, block=state.block)

    def effect() -> dict[str, Any]:
        subnet.neurons.axons[uid] = axon
        return {"netuid": subnet.netuid, "uid": uid, "url": axon.url()}

    return effect
