"""One audit point, run for real: a testnet of its own, fabricated evidence, every audit.

Each point starts what `subnetlab up` starts (`local.testnet.Testnet`: a ledger on its own
embedded Redis, miners and validators as processes): miners honest, honest and lazy (sim
engines); validators honest, honest, weight-copier and lazy, each a real `validator run`
writing real evidence; and one more registered validator, the *fabricator*, whose process
is stopped at once: the experiment plays it (as the integration tests play their "liar").
It copies: it asks no miner, sets the weights its made-up evidence implies, and commits
that evidence, one way of making it up per epoch (:data:`FABRICATIONS`):

- ``invented``: plausible records (real tasks, correct answers for the miners the chain's
  consensus favours, a wrong one for the rest, believable latencies), self-consistent
  scores and weights, in the current evidence format, with no miner signatures;
- ``self-signed``: the same, each answer "signed" with the fabricator's own key;
- ``replayed``: an honest validator's real records, miner signatures and all, as its own;
- ``downgraded``: the invented records in the old format (version 3), which had no
  signatures to check.

Then (a) the chain's block log is replayed from the run's genesis (`ledger.verify`'s
check of every block) and, at each epoch, Yuma is recomputed from the weights and stake
the chain holds at that point (`chain.yuma.epoch` on `chain.blocks.epoch_inputs`) and
compared with the incentive and dividends the ledger served in its metagraph after that
epoch (read over HTTP while the network ran); (b) every committed evidence document is
audited (`validator.audit.audit_evidence`, what `subnetlab audit` runs).
"""

from __future__ import annotations

import copy
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from subnetlab.chain.blocks import epoch_inputs
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.chain.yuma import epoch as yuma_epoch
from subnetlab.keys import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.ledger.verify import ChainKeys, check_block, genesis_hash
from subnetlab.local.testnet import NeuronRun, Testnet
from subnetlab.protocol.answers import evidence_form, sign_answer
from subnetlab.protocol.client import encode_json
from subnetlab.protocol.metagraph import occupied
from subnetlab.specs import Network, parse_documents
from subnetlab.tasks import KINDS, OPEN, generate
from subnetlab.validator.answer_proof import UNSIGNED, round_request
from subnetlab.validator.audit import audit_evidence
from subnetlab.validator.evidence import final_moving, load_evidence, store_evidence
from subnetlab.validator.scoring import task_score
from subnetlab.validator.weights import honest_weights

Say = Callable[[str], None]

TEMPO = 10
BLOCK_TIME = 0.25
TIMEOUT_S = 2.0
VALIDATORS = {"honest-0": "honest", "honest-1": "honest", "copier": "weight-copier",
              "lazy-validator": "lazy"}
MINERS = {"miner-0": "honest", "miner-1": "honest", "lazy-miner": "lazy"}
FABRICATOR = "fabricator"
FABRICATIONS = ("invented", "self-signed", "replayed", "downgraded")
TOLERANCE = 1e-9
"""How far a recomputed share may sit from the served one (both are the same float64
arithmetic on the same inputs; this only absorbs JSON's round trip)."""
WAIT_S = 180.0


class AuditRunError(RuntimeError):
    """The point's network did not get where the audit needs it (says what, and where)."""


@dataclass(frozen=True)
class Setup:
    seed: int
    epochs: int
    """Epochs the subnet runs in all (the fabrications need four after warm-up)."""


@dataclass(frozen=True)
class Audited:
    """One evidence document's audit: whose (a behaviour or a fabrication), the verdict,
    and its reasons split by whether the miners' signatures gave them."""

    kind: str
    epoch: int
    ok: bool
    signature_reasons: int
    other_reasons: int
    unprovable: bool


@dataclass(frozen=True)
class Measured:
    audited: tuple[Audited, ...]
    yuma_epochs: int
    yuma_values: int
    yuma_matches: int
    yuma_worst: float
    chain_verified: bool


def network(setup: Setup) -> Network:
    """The point's subnet: the validators of :data:`VALIDATORS` and the fabricator (equal
    stake), the miners of :data:`MINERS` on sim engines."""
    validator = {"timeoutSeconds": TIMEOUT_S, "intervalSeconds": 0.3, "sampleSize": 3}
    docs: list[tuple[str, Any]] = [("audit", {
        "kind": "Subnet", "metadata": {"name": "audit"},
        "spec": {"hyperparameters": {"tempo": TEMPO, "weightsRateLimit": 0,
                                     "immunityPeriod": 1000, "maxRegistrationsPerBlock": 64,
                                     "targetRegistrationsPerInterval": 64}}})]
    docs += [("audit", {"kind": "Neuron", "metadata": {"name": name},
                        "spec": {"subnet": "audit", "role": "validator", "stake": 1000,
                                 "behaviour": behaviour, "validator": validator}})
             for name, behaviour in {**VALIDATORS, FABRICATOR: "honest"}.items()]
    docs += [("audit", {"kind": "Neuron", "metadata": {"name": name},
                        "spec": {"subnet": "audit", "role": "miner", "behaviour": behaviour}})
             for name, behaviour in MINERS.items()]
    return parse_documents(docs)


def run(setup: Setup, say: Say = lambda text: None) -> Measured:
    """Start the point's testnet, fabricate, audit, stop it (whatever happens)."""
    with tempfile.TemporaryDirectory(prefix="subnetlab-audit-") as tmp:
        testnet = Testnet(network(setup), Path(tmp), block_time=BLOCK_TIME, organic_rate=0.0)
        try:
            testnet.start(say)
            return _measure(testnet, Path(tmp), setup, say)
        finally:
            testnet.stop()


@dataclass
class _Watch:
    """Reads the ledger while the network runs: the metagraph after each epoch."""

    client: LedgerClient
    netuid: int
    snapshots: list[dict[str, Any]]

    def epochs(self) -> int:
        return int(self.client.subnet(self.netuid)["epochs_run"])

    def look(self) -> None:
        self.snapshots.append(self.client.metagraph(self.netuid))

    def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            if time.monotonic() > deadline:
                raise AuditRunError(f"the audit network did not reach {what} in {WAIT_S:.0f} s")
            self.look()
            time.sleep(0.2)
        self.look()


def _measure(testnet: Testnet, run_dir: Path, setup: Setup, say: Say) -> Measured:
    run = testnet.subnets[0]
    by_name = {n.spec.metadata.name: n for n in run.neurons}
    fabricator = by_name[FABRICATOR]
    assert fabricator.child is not None
    fabricator.child.stop()  # from now on the experiment plays it
    store = redis.Redis.from_url(str(testnet.redis_url))
    honest = [by_name[n].key.ss58_address for n, b in VALIDATORS.items() if b == "honest"]
    fabricated: dict[int, str] = {}
    rng = random.Random(f"audit:{setup.seed}")
    with LedgerClient(testnet.ledger_url, timeout=30) as client:
        watch = _Watch(client, run.netuid, [])
        say("waiting for the honest validators' first evidence")
        watch.until(lambda: all(client.evidence(run.netuid, hotkey=h) for h in honest),
                    "evidence from every honest validator")
        for kind in FABRICATIONS:
            start = watch.epochs()

            def moved(start: int = start) -> bool:
                return watch.epochs() > start

            watch.until(moved, "the next epoch")
            say(f"the fabricator commits {kind} evidence")
            template = _latest(client, store, run.netuid, honest[0])
            epoch = _fabricate(client, store, run.netuid, fabricator.key, kind, template, rng)
            fabricated[epoch] = kind
        watch.until(lambda: watch.epochs() >= setup.epochs, f"{setup.epochs} epochs")
        say("auditing every evidence document")
        audited = _audit_all(client, store, run.netuid, by_name, fabricated)
        say("replaying the chain and recomputing every epoch's Yuma")
        genesis = Genesis.model_validate_json((run_dir / "genesis.json").read_text())
        recomputed, verified = _recompute(client, genesis, run.netuid)
    epochs, values, matches, worst = _compare(recomputed, watch.snapshots)
    return Measured(tuple(audited), epochs, values, matches, worst, verified)


def _latest(client: LedgerClient, store: redis.Redis, netuid: int, hotkey: str
            ) -> dict[str, Any]:
    entry = max(client.evidence(netuid, hotkey=hotkey), key=lambda e: int(e["epoch"]))
    document = load_evidence(store, str(entry["digest"]))
    if document is None:
        raise AuditRunError(f"evidence {entry['digest']} is committed but not in the store")
    return document


# ---- the fabricator ------------------------------------------------------------------------


def _invented(metagraph: dict[str, Any], own: str, rng: random.Random
              ) -> list[dict[str, Any]]:
    """Plausible records for every miner: a real task each, the right answer for the miners
    the consensus favours, a wrong one for the rest, latencies like real ones."""
    miners = [n for n in occupied(metagraph["neurons"]) if n.get("axon") and n["hotkey"] != own]
    kinds = [k for k in KINDS if k != OPEN]
    favoured = {n["uid"] for n in miners if float(n["consensus"]) > 0} or \
        {n["uid"] for n in miners}
    records = []
    for neuron in sorted(miners, key=lambda n: int(n["uid"])):
        task = generate(rng.choice(kinds), rng.randrange(2**31))
        response = task.expected if neuron["uid"] in favoured else "I do not know"
        latency = round(rng.uniform(0.05, 0.6), 4)
        records.append({"uid": int(neuron["uid"]), "hotkey": neuron["hotkey"],
                        "kind": task.kind, "seed": task.seed, "prompt": task.prompt,
                        "response": response, "latency_s": latency, "round": 0,
                        "score": task_score(task, response, latency, TIMEOUT_S)})
    return records


def _self_signed(records: list[dict[str, Any]], key: Keypair) -> list[dict[str, Any]]:
    """Each answer with a signature, made with the fabricator's own key."""
    signed = []
    for record in records:
        body = encode_json({"choices": [{"index": 0, "message": {
            "role": "assistant", "content": record["response"]}}]})
        request = encode_json(round_request(record["prompt"]))
        answer = sign_answer(key, body, _uuid(record), request, key.ss58_address)
        signed.append({**record, "answer": evidence_form(answer, body)})
    return signed


def _uuid(record: dict[str, Any]) -> str:
    h = f"{int(record['seed']):032x}"[-32:]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


def _fabricate(client: LedgerClient, store: redis.Redis, netuid: int, key: Keypair,
               kind: str, template: dict[str, Any], rng: random.Random) -> int:
    """Set the weights the made-up evidence implies, commit the evidence; its epoch."""
    metagraph = client.metagraph(netuid)
    invented = _invented(metagraph, key.ss58_address, rng)
    records = {"invented": invented, "self-signed": _self_signed(invented, key),
               "replayed": [{**r, "round": 0} for r in template.get("records", [])],
               "downgraded": invented}[kind]
    document: dict[str, Any] = {
        "version": 3 if kind == "downgraded" else template["version"],
        "validator": key.ss58_address, "netuid": netuid, "behaviour": "honest",
        "timeout_s": TIMEOUT_S, "alpha": template["alpha"],
        "reference": template.get("reference"), "records": records, "penalties": [],
        "moving_before": {},
        "held_uids": sorted(int(n["uid"]) for n in occupied(metagraph["neurons"])),
        "held_at_block": int(metagraph["block"]), "weights": {}}
    weights = honest_weights(final_moving(document))
    document["weights"] = {str(k): v for k, v in weights.items()}
    uids = sorted(weights)
    receipt = client.submit(key, "set_weights", {"netuid": netuid, "uids": uids,
                                                 "weights": [weights[u] for u in uids]})
    epoch = int(client.subnet(netuid)["epochs_run"])
    document.update(epoch=epoch, chain={"call": "set_weights", "block": int(receipt["block"])})
    digest = store_evidence(store, document)
    client.submit(key, "commit_evidence", {"netuid": netuid, "epoch": epoch, "digest": digest})
    return epoch


# ---- (b) the evidence audit ----------------------------------------------------------------


def _audit_all(client: LedgerClient, store: redis.Redis, netuid: int,
               by_name: dict[str, NeuronRun], fabricated: dict[int, str]) -> list[Audited]:
    kinds = {by_name[name].key.ss58_address: behaviour for name, behaviour in VALIDATORS.items()}
    fabricator = by_name[FABRICATOR].key.ss58_address
    audited = []
    for entry in client.evidence(netuid):
        hotkey, epoch, digest = str(entry["hotkey"]), int(entry["epoch"]), str(entry["digest"])
        if hotkey == fabricator:
            if epoch not in fabricated:
                continue  # committed by its process before it was stopped
            kind = f"fabricated: {fabricated[epoch]}"
        else:
            kind = kinds[hotkey]
        document = load_evidence(store, digest)
        if document is None:
            raise AuditRunError(f"evidence {digest} of {hotkey} is not in the store")
        result = audit_evidence(client, netuid, hotkey, epoch, digest, document,
                                lambda d: load_evidence(store, d))
        signed = sum(UNSIGNED in r for r in result.reasons)
        audited.append(Audited(kind, epoch, result.ok, signed, len(result.reasons) - signed,
                               any("cannot prove" in n for n in result.notes)))
    return audited


# ---- (a) Yuma from on-chain weights and stake -----------------------------------------------


def _recompute(client: LedgerClient, genesis: Genesis, netuid: int
               ) -> tuple[list[tuple[int, Any, Any]], bool]:
    """(block, incentive, dividends) of every epoch of `netuid`, recomputed, and whether
    every block replayed exactly as stored (`ledger verify`'s check)."""
    state = ChainState.from_genesis(genesis)
    keys = ChainKeys.of(genesis)
    parent = genesis_hash(genesis)
    height = int(client.latest_block()["number"])
    recomputed = []
    verified = True
    for number in range(1, height + 1):
        subnet = state.subnets.get(netuid)
        if subnet is not None and subnet.neurons.n > 0 \
                and number - subnet.last_epoch_block >= subnet.hyperparameters.tempo:
            state.block += 1  # the epoch reads the block it runs in
            inputs = copy.deepcopy(epoch_inputs(state, subnet))
            state.block -= 1
            result = yuma_epoch(inputs, subnet.hyperparameters)
            recomputed.append((number, result.incentive, result.dividends))
        block = client.block(number)
        if check_block(state, block, number, parent, keys) is not None:
            verified = False
            break
        parent = str(block["hash"])
    return recomputed, verified


def _compare(recomputed: list[tuple[int, Any, Any]], snapshots: list[dict[str, Any]]
             ) -> tuple[int, int, int, float]:
    """(epochs compared, values compared, values matching, worst difference): each epoch's
    recomputed incentive and dividends against the first metagraph read after it."""
    epochs = values = matches = 0
    worst = 0.0
    seen: set[int] = set()
    for snapshot in snapshots:
        block = int(snapshot["block"])
        ran = [r for r in recomputed if r[0] <= block]
        if not ran or ran[-1][0] in seen:
            continue
        number, incentive, dividends = ran[-1]
        seen.add(number)
        epochs += 1
        for row in occupied(snapshot["neurons"]):
            uid = int(row["uid"])
            for served, mine in ((row["incentive"], incentive), (row["dividends"], dividends)):
                difference = abs(float(served) - float(np.asarray(mine)[uid]))
                worst = max(worst, difference)
                values += 1
                matches += difference <= TOLERANCE
    return epochs, values, matches, worst
