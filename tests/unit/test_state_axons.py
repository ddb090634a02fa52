"""serve_axon's address rules: what validators may be sent to, on a dev chain and not.

Link-local (cloud metadata lives there), multicast, unspecified, reserved and known
metadata addresses are refused everywhere; loopback only where the genesis allows it
(`allow_loopback_axons`, the dev genesis); private addresses (pods, LANs) stay allowed.
"""

from __future__ import annotations

import pytest

from subnetlab.chain.errors import ErrorCode
from subnetlab.chain.model import Genesis
from subnetlab.chain.queries import metagraph
from subnetlab.ledger.genesis import dev_genesis
from tests.unit.state_support import ALICE, Chain, addr, make_genesis

HOTKEY = addr("axon-hotkey")

REFUSED = [
    ("169.254.169.254", "cloud instance-metadata"),
    ("::ffff:169.254.169.254", "cloud instance-metadata"),
    ("fd00:ec2::254", "cloud instance-metadata"),
    ("100.100.100.200", "cloud instance-metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
]
PRIVATE_AND_PUBLIC = ["10.88.0.5", "172.16.3.4", "192.168.1.20", "fd12:3456::1", "8.8.8.8",
                      "2a00:1450::1", "100.64.0.1"]


def chain_with_neuron(genesis: Genesis) -> tuple[Chain, int]:
    chain = Chain(genesis)
    netuid = chain.subnet()
    chain.register(netuid, HOTKEY, ALICE)
    return chain, netuid


@pytest.fixture(params=[True, False], ids=["local", "not-local"])
def chain_net(request: pytest.FixtureRequest) -> tuple[Chain, int]:
    return chain_with_neuron(make_genesis(allow_loopback_axons=request.param))


@pytest.mark.parametrize(("ip", "reason"), REFUSED)
def test_addresses_validators_must_not_call_are_refused(
    chain_net: tuple[Chain, int], ip: str, reason: str
) -> None:
    chain, netuid = chain_net
    err = chain.fails(HOTKEY, "serve_axon", ErrorCode.AXON_IP_NOT_ALLOWED,
                      netuid=netuid, ip=ip, port=8091)
    assert err.field == "ip" and reason in err.message
    assert metagraph(chain.state, netuid)[0]["axon"] is None


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"])
def test_loopback_only_where_the_genesis_allows_it(ip: str) -> None:
    strict, netuid = chain_with_neuron(make_genesis(allow_loopback_axons=False))
    err = strict.fails(HOTKEY, "serve_axon", ErrorCode.AXON_IP_NOT_ALLOWED,
                       netuid=netuid, ip=ip, port=8091)
    assert "loopback" in err.message and "allow_loopback_axons" in err.message
    local, netuid = chain_with_neuron(make_genesis(allow_loopback_axons=True))
    local.call(HOTKEY, "serve_axon", netuid=netuid, ip=ip, port=8091)


@pytest.mark.parametrize("ip", PRIVATE_AND_PUBLIC)
def test_private_and_public_addresses_are_served(chain_net: tuple[Chain, int], ip: str) -> None:
    chain, netuid = chain_net
    out = chain.call(HOTKEY, "serve_axon", netuid=netuid, ip=ip, port=8091)
    assert metagraph(chain.state, netuid)[0]["axon"]["url"] == out["url"]


def test_which_genesis_allows_loopback() -> None:
    assert Genesis().allow_loopback_axons is False  # a genesis file must say so
    assert dev_genesis().allow_loopback_axons is True  # `ledger serve` without --genesis
