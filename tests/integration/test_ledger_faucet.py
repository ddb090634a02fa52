"""The faucet's limits and serve_axon's address rules through a real ledger process.

One ledger on a real Redis, started from a genesis that is not a dev chain's: a faucet
asking for an 8-bit proof of work with room for two drips in all, and no loopback axons.
The CLI (`subnetlab faucet`, in-process) must solve the work by itself; refusals come back
with their codes and HTTP statuses; a restart replays the stored blocks (whose state roots
commit to the block hashes the work is checked against) and comes up.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subnetlab.chain.model import FaucetConfig, Genesis
from subnetlab.chain.units import TOKEN
from subnetlab.cli.main import app
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.ledger.faucet_work import faucet_params
from subnetlab.ledger.genesis import DEV_ACCOUNTS, DEV_BALANCE
from tests.integration.chainclient import ChainClient
from tests.integration.conftest import LedgerProcess, RedisServer, start_ledger

DRIP = 10 * TOKEN
ALICE = Keypair.dev("alice")
PASSWORD = "pw-for-tests"


@dataclass
class Net:
    ledger: LedgerProcess
    chain: ChainClient
    home: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer) -> Iterator[Net]:
    workdir = tmp_path_factory.mktemp("faucet-ledger")
    genesis = Genesis(
        chain_id="subnetlab-faucet-test",
        balances={Keypair.dev(n).ss58_address: DEV_BALANCE for n in DEV_ACCOUNTS},
        sudo=ALICE.ss58_address,
        faucet=FaucetConfig(amount=DRIP, cooldown_blocks=0, block_budget=DRIP,
                            interval_budget=2 * DRIP, interval_blocks=1_000_000,
                            pow_difficulty=8),
        allow_loopback_axons=False,
    )
    path = workdir / "genesis.json"
    path.write_text(genesis.model_dump_json())
    ledger = start_ledger(workdir, module_redis.url, ["--genesis", str(path)])
    chain = ChainClient(ledger.url)
    yield Net(ledger, chain, workdir / "cli-home")
    chain.close()
    ledger.kill(signal.SIGTERM)


def cli(net: Net, *args: str) -> tuple[int, str, str]:
    env = {"SUBNETLAB_HOME": str(net.home), "SUBNETLAB_PASSWORD": PASSWORD,
           "SUBNETLAB_LEDGER": net.ledger.url, "COLUMNS": "250"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_faucet_asks_for_work_the_cli_solves_and_the_budget_holds(net: Net) -> None:
    fresh = Keypair.dev("faucet-no-work")
    response = net.chain.submit(net.chain.sign(fresh, "faucet", {}))
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert (body["code"], body["field"]) == ("faucet_pow_required", "pow_block")
    assert "8 zero bits" in body["message"]

    info = net.chain.get_json("/v1/faucet")
    assert info["config"]["pow_difficulty"] == 8 and info["work"]["difficulty"] == 8

    balances = []
    for name in ("first", "second"):
        assert cli(net, "wallet", "new", "--name", name)[0] == 0
        code, out, err = cli(net, "faucet", "--name", name, "--json")
        assert code == 0, (out, err)
        balances.append(json.loads(out)["balance"])
    assert balances == [DRIP, DRIP]

    # the interval's budget (two drips) is spent: refused at the door, 429
    late = Keypair.dev("faucet-late")
    with LedgerClient(net.ledger.url) as client:
        proof = faucet_params(client, late.ss58_address)
    response = net.chain.submit(net.chain.sign(late, "faucet", proof))
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "faucet_budget_exhausted"
    assert cli(net, "wallet", "new", "--name", "third")[0] == 0
    code, out, err = cli(net, "faucet", "--name", "third")
    assert code != 0 and out == ""
    assert "faucet_budget_exhausted" in err and "interval_budget" in err

    # the stored blocks replay to the same roots (block hashes included) after a restart
    net.ledger.kill(signal.SIGTERM)
    net.ledger.start()
    assert net.chain.get_json("/v1/faucet")["paid_this_interval"] == 2 * DRIP


def test_serve_axon_refuses_metadata_and_loopback_on_a_chain_that_is_not_local(
    net: Net,
) -> None:
    hotkey = Keypair.dev("faucet-test-miner")
    netuid = net.chain.create_subnet(ALICE, {"tempo": 100})
    net.chain.call(ALICE, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    for ip, reason in (("169.254.169.254", "metadata"), ("127.0.0.1", "loopback")):
        ext = net.chain.sign(hotkey, "serve_axon", {"netuid": netuid, "ip": ip, "port": 8091})
        response = net.chain.submit(ext)
        assert response.status_code == 400, response.text
        body = response.json()["error"]
        assert (body["code"], body["field"]) == ("axon_ip_not_allowed", "ip")
        assert reason in body["message"]
    served = net.chain.call(hotkey, "serve_axon", {"netuid": netuid, "ip": "10.88.0.5",
                                                   "port": 8091})
    assert served["status"] == "included"
    assert net.chain.metagraph(netuid)[0]["axon"]["ip"] == "10.88.0.5"
