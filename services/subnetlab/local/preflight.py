"""Checks of a network against this machine, before `subnetlab up` starts anything.

Why a step of its own: the specs can be valid and still not run here (a wallet that is not
on this machine, two neurons with one hotkey, a vLLM miner on a CPU build that is not built
or with a model that would have to be downloaded). Found after the ledger started, such a
problem leaves a half-started testnet and an error without the file; found here, it is one
line naming the file, the resource and the field, and nothing has been started or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from subnetlab.keys.keypair import Keypair
from subnetlab.neuron.command import key_name, sybil_count, sybil_key_names
from subnetlab.specs import KeySource, Network, Neuron, SpecError


@dataclass(frozen=True)
class Prepared:
    """What the checks resolved, so that starting does not resolve it again."""

    owners: dict[str, Keypair]  # subnet name -> the key that creates it and pays
    hotkeys: dict[str, Keypair]  # neuron name -> its hotkey
    sybils: dict[str, list[Keypair]] = field(default_factory=dict)
    """neuron name -> a sybil's further hotkeys (`sybil_keys_of`); other neurons: none."""


def dev_key_name(neuron: Neuron) -> str:
    """The dev key of a neuron whose spec names no key: derived from subnet and name, so
    that every run of the same files gets the same hotkeys."""
    return f"{neuron.spec.subnet}-{neuron.metadata.name}"


def key_of(source: KeySource, default_name: str) -> Keypair:
    """A spec's key: its dev key, its wallet's hotkey, or a dev key named after it.

    Raises ValueError (a `WalletError`) or OSError when the wallet cannot be read.
    """
    if source.wallet:
        from subnetlab.wallet import load_hotkey

        return load_hotkey(source.wallet, source.hotkey)
    return Keypair.dev(source.dev_key or default_name)


def sybil_keys_of(source: KeySource, default_name: str, count: int) -> list[Keypair]:
    """A sybil's further hotkeys, named after its own key (`sybil_key_names`): dev keys
    `NAME-sybil-1` ..., or, for a wallet neuron, the wallet's hotkeys `HOTKEY-sybil-1` ...,
    which must exist (`up` never writes into a wallet).

    Raises ValueError (a `WalletError`) or OSError when a wallet hotkey cannot be read.
    """
    names = sybil_key_names(key_name(source, default_name), count)
    if source.wallet:
        from subnetlab.wallet import load_hotkey

        return [load_hotkey(source.wallet, name) for name in names]
    return [Keypair.dev(name) for name in names]


def preflight(network: Network) -> Prepared:
    """Resolve every key and check every local model server; SpecError naming the file,
    the resource and the field of every problem found (all of them, in one error)."""
    problems: list[str] = []
    owners: dict[str, Keypair] = {}
    for subnet in network.subnets:
        try:
            owners[subnet.metadata.name] = key_of(subnet.spec.owner,
                                                  f"{subnet.metadata.name}-owner")
        except (OSError, ValueError) as exc:
            problems.append(str(network.error(subnet, "spec.owner", str(exc))))
    hotkeys: dict[str, Keypair] = {}
    sybils: dict[str, list[Keypair]] = {}
    holders: dict[tuple[str, str], Neuron] = {}
    for neuron in network.neurons:
        name = neuron.metadata.name
        try:
            key = key_of(neuron.spec.wallet, dev_key_name(neuron))
        except (OSError, ValueError) as exc:
            problems.append(str(network.error(neuron, "spec.wallet", str(exc))))
            continue
        if count := sybil_count(neuron.spec):
            try:
                sybils[name] = sybil_keys_of(neuron.spec.wallet, dev_key_name(neuron), count)
            except (OSError, ValueError) as exc:
                wallet = neuron.spec.wallet.wallet
                problems.append(str(network.error(neuron, "spec.miner.sybilHotkeys", (
                    f"{exc}; a sybil's further hotkeys are the hotkeys "
                    f"{', '.join(sybil_key_names(neuron.spec.wallet.hotkey, count))} of wallet "
                    f"{wallet}: add them with `subnetlab wallet new-hotkey --name {wallet} "
                    "--hotkey NAME`"))))
        for i, held in enumerate([key, *sybils.get(name, [])]):
            slot = (neuron.spec.subnet, held.ss58_address)
            if other := holders.get(slot):
                what = f"sybil hotkey {i}" if i else "hotkey"
                whose = ("another hotkey of this neuron" if other is neuron
                         else f"a hotkey of {network.where(other)}")
                problems.append(str(network.error(
                    neuron, "spec.miner.sybilHotkeys" if i else "spec.wallet",
                    f"{what} {held.ss58_address} is also {whose}; one hotkey holds one uid "
                    "of a subnet")))
            holders[slot] = neuron
        hotkeys[name] = key
        try:
            _check_backend(network, neuron)
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(*problems)
    return Prepared(owners, hotkeys, sybils)


def _check_backend(network: Network, neuron: Neuron) -> None:
    """A vLLM miner without a url gets a local server: check that one can run here."""
    backend = neuron.spec.miner.backend if neuron.spec.miner else None
    if backend is None or backend.type != "vllm" or backend.url:
        return
    from subnetlab.local.vllm_server import VllmServerError, check_local

    try:
        check_local(backend)
    except VllmServerError as exc:
        field, _, reason = str(exc).partition(": ")
        raise SpecError(f"{network.where(neuron)}: spec.{field}: {reason}") from None
