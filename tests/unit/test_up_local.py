"""`subnetlab up`'s parts that need no running network: the checks before start (keys,
wallets, local vLLM), the key flags, the restart policy with real crashing processes, the
progress lines and the view, a ledger that does not answer."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from subnetlab import wallet
from subnetlab.bench.processes import free_port
from subnetlab.chain.units import TOKEN
from subnetlab.cli.folders import folder_problem
from subnetlab.cli.up_view import Steps, render
from subnetlab.keys.keypair import Keypair
from subnetlab.local import testnet as local
from subnetlab.local.preflight import dev_key_name, preflight
from subnetlab.local.processes import Child, PortAllocator, RestartPolicy, Supervisor
from subnetlab.local.tiny_model import SERVED_NAME
from subnetlab.local.vllm_env import MARKER, VENV_NAME
from subnetlab.neuron.command import key_args, role_args
from subnetlab.specs import KeySource, Network, SpecError, load_specs

SUBNET = "apiVersion: subnetlab.io/v1alpha1\nkind: Subnet\nmetadata: {name: s}\n"


def neuron(name: str, spec: str) -> str:
    return (f"apiVersion: subnetlab.io/v1alpha1\nkind: Neuron\nmetadata: {{name: {name}}}\n"
            f"spec: {spec}\n")


def network(tmp_path: Path, *neurons: str) -> tuple[Network, Path]:
    path = tmp_path / "net.yaml"
    path.write_text("---\n".join([SUBNET, *neurons]))
    return load_specs([path]), path


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(wallet.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv("SUBNETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SUBNETLAB_VLLM_PYTHON", raising=False)
    return tmp_path / "home"


# ---- keys -------------------------------------------------------------------------------


def test_a_wallet_neuron_is_registered_and_run_with_the_wallets_hotkey(tmp_path: Path) -> None:
    made = wallet.create_wallet("w", "pw", hotkey="h1")
    net, _ = network(tmp_path, neuron("m", "{subnet: s, role: miner, wallet: {wallet: w, "
                                      "hotkey: h1}}"), neuron("d", "{subnet: s, role: miner}"))
    prepared = preflight(net)
    assert prepared.hotkeys["m"].ss58_address == made.hotkey.ss58_address
    wallet_neuron, dev_neuron = net.neurons
    assert key_args(wallet_neuron.spec.wallet, dev_key_name(wallet_neuron)) == [
        "--wallet", "w", "--hotkey", "h1"]
    assert key_args(dev_neuron.spec.wallet, dev_key_name(dev_neuron)) == ["--dev-key", "s-d"]
    assert key_args(KeySource(dev_key="bob"), "unused") == ["--dev-key", "bob"]


@pytest.mark.parametrize(
    ("neurons", "expected"),
    [
        ([neuron("m", "{subnet: s, role: miner, wallet: {wallet: nowhere}}")],
         "(Neuron m): spec.wallet: "),
        ([neuron("m", "{subnet: s, role: miner, wallet: {devKey: k}}"),
          neuron("v", "{subnet: s, role: validator, wallet: {devKey: k}}")],
         "(Neuron v): spec.wallet: hotkey "),
    ],
)
def test_keys_that_cannot_be_used_are_refused_naming_file_and_field(
        tmp_path: Path, neurons: list[str], expected: str) -> None:
    net, path = network(tmp_path, *neurons)
    with pytest.raises(SpecError) as info:
        preflight(net)
    assert str(info.value).startswith(f"{path} {expected}"), info.value


def test_a_subnet_owner_wallet_that_is_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(SUBNET + "spec: {owner: {wallet: gone}}\n")
    with pytest.raises(SpecError) as info:
        preflight(load_specs([path]))
    assert str(info.value).startswith(f"{path} (Subnet s): spec.owner: ")


def test_every_key_problem_is_reported_at_once(tmp_path: Path) -> None:
    net, path = network(tmp_path,
                        neuron("a", "{subnet: s, role: miner, wallet: {wallet: nowhere}}"),
                        neuron("b", "{subnet: s, role: miner, wallet: {devKey: k}}"),
                        neuron("c", "{subnet: s, role: validator, wallet: {devKey: k}}"),
                        neuron("d", "{subnet: s, role: miner, wallet: {wallet: gone}}"))
    with pytest.raises(SpecError) as info:
        preflight(net)
    assert [problem.split(": ")[0:2] for problem in info.value.problems] == [
        [f"{path} (Neuron a)", "spec.wallet"], [f"{path} (Neuron c)", "spec.wallet"],
        [f"{path} (Neuron d)", "spec.wallet"]]
    assert str(info.value).startswith("3 problems in the specs:\n  ")


# ---- a sybil's further hotkeys ----------------------------------------------------------


SYBIL = "{subnet: s, role: miner, behaviour: sybil, stake: 4, miner: {sybilHotkeys: 2}"


def test_a_sybils_hotkeys_are_derived_from_its_name_registered_and_passed(
        tmp_path: Path) -> None:
    net, _ = network(tmp_path, neuron("m", SYBIL + "}"),
                     neuron("d", SYBIL + ", wallet: {devKey: bob}}"),
                     neuron("h", "{subnet: s, role: miner}"))
    prepared = preflight(net)
    assert [k.ss58_address for k in prepared.sybils["m"]] == [
        Keypair.dev("s-m-sybil-1").ss58_address, Keypair.dev("s-m-sybil-2").ss58_address]
    assert [k.ss58_address for k in prepared.sybils["d"]] == [
        Keypair.dev("bob-sybil-1").ss58_address, Keypair.dev("bob-sybil-2").ss58_address]
    assert "h" not in prepared.sybils
    # registered: every hotkey, the neuron's stake on its own hotkey only (staked once)
    run = local.NeuronRun(net.neurons[0], prepared.hotkeys["m"], sybils=prepared.sybils["m"])
    assert [(k.ss58_address, stake) for k, stake in run.registered(4 * TOKEN)] == [
        (prepared.hotkeys["m"].ss58_address, 4 * TOKEN),
        *((k.ss58_address, 0) for k in prepared.sybils["m"])]
    assert [label for label, _ in run.labelled_keys()] == ["m", "m sybil 1", "m sybil 2"]
    # passed: the miner's command line names the same keys (`miner serve --sybil-key`)
    testnet = local.Testnet(net, tmp_path / "run", prepared=prepared)
    testnet.ledger_url = "http://127.0.0.1:1"
    args = testnet._child(run, tmp_path / "logs", None).args
    at = args.index("--dev-key")
    assert args[at:at + 6] == ["--dev-key", "s-m", "--sybil-key", "s-m-sybil-1",
                               "--sybil-key", "s-m-sybil-2"]
    assert args[args.index("--behaviour") + 1] == "sybil"
    honest = testnet._child(local.NeuronRun(net.neurons[2], prepared.hotkeys["h"]),
                            tmp_path / "logs", None).args
    assert "--sybil-key" not in honest
    # the summary: the neuron's own row, and one per further hotkey
    rows = {prepared.hotkeys["m"].ss58_address: {"uid": 3, "stake": 4 * TOKEN,
                                                  "incentive": 0.2},
            prepared.sybils["m"][1].ss58_address: {"uid": 5, "incentive": 0.1}}
    summary = local.neuron_summary(run, rows)
    assert (summary["uid"], summary["stake"], summary["incentive"]) == (3, 4.0, 0.2)
    assert [(r["uid"], r["hotkey"], r["incentive"]) for r in summary["sybils"]] == [
        (None, prepared.sybils["m"][0].ss58_address, 0.0),
        (5, prepared.sybils["m"][1].ss58_address, 0.1)]
    # the view: a line per hotkey
    testnet.subnets.append(local.SubnetRun(net.subnets[0], 1, [run], history=[
        {"epoch": 1, "block": 20, "neurons": [{"hotkey": h, **r} for h, r in rows.items()]}]))
    out = io.StringIO()
    Console(file=out, width=160).print(render(testnet, 0.0))
    lines = {line.split("│")[2].strip(): line.split("│")[1].strip()
             for line in out.getvalue().splitlines() if line.count("│") > 3}
    assert {name: lines.get(name) for name in ("m", "m sybil 1", "m sybil 2")} == {
        "m": "3", "m sybil 1": "-", "m sybil 2": "5"}


def test_a_wallet_sybil_uses_the_wallets_sybil_hotkeys(tmp_path: Path) -> None:
    made = wallet.create_wallet("w", "pw", hotkey="h1")
    extra = [wallet.create_hotkey("w", f"h1-sybil-{i}") for i in (1, 2)]
    net, _ = network(tmp_path, neuron("m", SYBIL + ", wallet: {wallet: w, hotkey: h1}}"))
    prepared = preflight(net)
    assert prepared.hotkeys["m"].ss58_address == made.hotkey.ss58_address
    assert [k.ss58_address for k in prepared.sybils["m"]] == [k.ss58_address for k in extra]
    assert key_args(net.neurons[0].spec.wallet, "unused", 2) == [
        "--wallet", "w", "--hotkey", "h1", "--sybil-key", "h1-sybil-1",
        "--sybil-key", "h1-sybil-2"]


def test_a_wallet_sybil_without_its_hotkeys_is_refused_naming_the_field(
        tmp_path: Path, home: Path) -> None:
    wallet.create_wallet("w", "pw", hotkey="h1")
    wallet.create_hotkey("w", "h1-sybil-1")  # the second is missing
    net, path = network(tmp_path, neuron("m", SYBIL + ", wallet: {wallet: w, hotkey: h1}}"))
    before = sorted(p.name for p in (home / "wallets" / "w" / "hotkeys").iterdir())
    with pytest.raises(SpecError) as info:
        preflight(net)
    message = str(info.value)
    assert message.startswith(f"{path} (Neuron m): spec.miner.sybilHotkeys: "), message
    assert "h1-sybil-2" in message
    assert "the hotkeys h1-sybil-1, h1-sybil-2 of wallet w: add them with `subnetlab wallet " \
        "new-hotkey --name w --hotkey NAME`" in message
    after = sorted(p.name for p in (home / "wallets" / "w" / "hotkeys").iterdir())
    assert after == before  # nothing written into the wallet


def test_a_wallet_sybil_hotkey_that_is_its_own_hotkey_again_is_refused(tmp_path: Path) -> None:
    made = wallet.create_wallet("w", "pw", hotkey="h1")
    assert made.hotkey.mnemonic is not None
    wallet.create_hotkey("w", "h1-sybil-1", mnemonic=made.hotkey.mnemonic)  # the same key
    wallet.create_hotkey("w", "h1-sybil-2")
    net, path = network(tmp_path, neuron("m", SYBIL + ", wallet: {wallet: w, hotkey: h1}}"))
    with pytest.raises(SpecError) as info:
        preflight(net)
    assert str(info.value) == (f"{path} (Neuron m): spec.miner.sybilHotkeys: sybil hotkey 1 "
                               f"{made.hotkey.ss58_address} is also another hotkey of this "
                               "neuron; one hotkey holds one uid of a subnet")


def test_a_sybil_hotkey_held_by_another_neuron_is_refused(tmp_path: Path) -> None:
    net, path = network(tmp_path, neuron("o", "{subnet: s, role: miner, wallet: "
                                         "{devKey: s-m-sybil-2}}"), neuron("m", SYBIL + "}"))
    with pytest.raises(SpecError) as info:
        preflight(net)
    taken = Keypair.dev("s-m-sybil-2").ss58_address
    assert str(info.value) == (f"{path} (Neuron m): spec.miner.sybilHotkeys: sybil hotkey 2 "
                               f"{taken} is also a hotkey of {path} (Neuron o); one hotkey "
                               "holds one uid of a subnet")


def test_a_validators_reference_model_reaches_its_command_line(tmp_path: Path) -> None:
    net, _ = network(tmp_path, neuron("v", "{subnet: s, role: validator, validator: {"
                                      "reference: {backend: vllm, url: 'http://r:8000', "
                                      "model: qwen}}}"),
                     neuron("d", "{subnet: s, role: validator}"))
    tasks = net.subnets[0].spec.tasks
    args = role_args(net.neurons[0].spec, tasks)
    assert args[-6:] == ["--reference-backend", "vllm", "--reference-url", "http://r:8000",
                         "--reference-model", "qwen"]
    assert "--reference-backend" not in role_args(net.neurons[1].spec, tasks)  # sim: default


# ---- local vLLM, checked before anything starts ----------------------------------------


VLLM = ("{{subnet: s, role: miner, miner: {{backend: {{type: vllm, model: {model}, "
        "gpus: {gpus}}}}}}}")


def _vllm_error(tmp_path: Path, model: str, gpus: int) -> str | None:
    net, _ = network(tmp_path, neuron("g", VLLM.format(model=model, gpus=gpus)))
    try:
        preflight(net)
    except SpecError as exc:
        return str(exc)
    return None


def test_a_cpu_vllm_miner_needs_the_cpu_build(tmp_path: Path) -> None:
    error = _vllm_error(tmp_path, SERVED_NAME, 0)
    assert error is not None and "(Neuron g): spec.miner.backend.gpus: gpus: 0 runs the CPU " \
        "build of vLLM, which is not built" in error, error


def test_a_cpu_vllm_miner_cannot_download_a_hub_model(tmp_path: Path) -> None:
    env = tmp_path / "cache" / VENV_NAME
    env.mkdir(parents=True)
    (env / MARKER).write_text("{}")
    error = _vllm_error(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct", 0)
    assert error is not None and "(Neuron g): spec.miner.backend.model: " \
        "'Qwen/Qwen2.5-0.5B-Instruct': on the CPU build (gpus: 0)" in error, error
    assert _vllm_error(tmp_path, SERVED_NAME, 0) is None  # buildable: the CPU build is there
    (tmp_path / "model").mkdir()
    assert _vllm_error(tmp_path, str(tmp_path / "model"), 0) is None


def test_a_gpu_vllm_miner_needs_a_gpu_build(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBNETLAB_VLLM_PYTHON", str(tmp_path / "no-python"))
    error = _vllm_error(tmp_path, "m", 1)
    assert error is not None and "(Neuron g): spec.miner.backend.gpus: " in error, error
    monkeypatch.setenv("SUBNETLAB_VLLM_PYTHON", sys.executable)
    assert _vllm_error(tmp_path, "m", 1) is None


def test_a_vllm_miner_with_a_url_needs_nothing_local(tmp_path: Path) -> None:
    net, _ = network(tmp_path, neuron("g", "{subnet: s, role: miner, miner: {backend: "
                                      "{type: vllm, model: m, gpus: 0, url: 'http://h:1'}}}"))
    preflight(net)


# ---- restarts: backoff and a limit --------------------------------------------------------


def test_the_restart_delay_doubles_up_to_a_cap_and_gives_up_after_the_limit() -> None:
    policy = RestartPolicy(base_delay=0.5, max_delay=3.0, max_crashes=4, window=60)
    crashes: list[float] = []
    delays = []
    for t in (0.0, 1.0, 2.0, 4.0):
        crashes.append(t)
        delays.append(policy.delay(crashes, t))
    assert delays == [0.5, 1.0, 2.0, 3.0]
    crashes.append(7.0)
    assert policy.delay(crashes, 7.0) is None  # five crashes within a minute
    assert policy.delay([0.0, 1.0, 30.0, 40.0, 70.0], 70.0) == 2.0  # older: forgiven
    assert policy.delay([100.0], 100.0) == 0.5


@pytest.mark.parametrize("kwargs", [{"base_delay": 0}, {"base_delay": 2, "max_delay": 1},
                                    {"max_crashes": 0}, {"window": 0}])
def test_a_bad_restart_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RestartPolicy"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


class Clock:
    """The supervisor's clock, moved by the test: the backoff is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_child_that_keeps_crashing_is_restarted_with_backoff_then_given_up(
        tmp_path: Path) -> None:
    clock = Clock()
    supervisor = Supervisor(policy=RestartPolicy(base_delay=1, max_delay=8, max_crashes=2,
                                                 window=100), clock=clock)
    child = Child("crasher", ["-c", "import sys; print('dying'); sys.exit(3)"],
                  tmp_path / "crasher.log", program=[sys.executable])
    supervisor.children.append(child)
    child.start()
    kinds = []
    for step in (0.0, 0.5, 0.5, 1.0, 2.0, 2.0, 50.0):
        clock.now += step
        assert child.process is not None
        child.process.wait(30)  # it has exited before the supervisor looks
        kinds.append([(e.kind, e.text) for e in supervisor.restart_crashed()])
    assert [[k for k, _ in events] for events in kinds] == [
        ["crashed"], [], ["restarted"], ["crashed"], ["restarted"], ["gave-up"], []]
    assert kinds[0][0][1] == "crasher crashed (exit code 3); restarting in 1.0 s"
    assert kinds[3][0][1] == "crasher crashed (exit code 3); restarting in 2.0 s"
    assert kinds[2][0][1] == "crasher crashed; restarted (#1)"
    assert "crasher crashed 3 times in 100 s (last exit code 3); gave up" in kinds[5][0][1]
    assert str(child.log_path) in kinds[5][0][1]
    assert child.given_up and child.restarts == 2
    assert child.log_path.read_text().count("dying") == 3


# ---- ports and orphans ---------------------------------------------------------------------


def test_the_port_allocator_never_hands_out_a_port_twice() -> None:
    # a probe that keeps returning the same numbers, as the kernel may for ports bound
    # to 0 and released again before the child binds them
    numbers = iter([free_port()] * 5 + [free_port() for _ in range(20)])
    ports = PortAllocator(probe=lambda: next(numbers))
    given = [ports.take() for _ in range(5)]
    assert len(set(given)) == 5
    real = PortAllocator()
    many = [real.take() for _ in range(300)]
    assert len(set(many)) == 300


def test_the_port_allocator_skips_a_port_someone_listens_on() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        numbers = iter([taken, taken, free_port()])
        ports = PortAllocator(probe=lambda: next(numbers))
        assert not ports.available(taken)
        assert ports.take() != taken


# binds the port after --port and listens; "address in use" when another process has it
LISTENER = ("import socket, sys, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[sys.argv.index('--port') + 1]))); s.listen()\n"
            "time.sleep(60)\n")


def test_a_child_whose_port_was_taken_restarts_on_another_port(tmp_path: Path) -> None:
    clock = Clock()
    supervisor = Supervisor(policy=RestartPolicy(base_delay=1), clock=clock)
    with socket.create_server(("127.0.0.1", 0)) as busy:  # someone else got its port
        taken = busy.getsockname()[1]
        child = Child("miner-lazy", ["-c", LISTENER, "--port", str(taken)],
                      tmp_path / "miner.log", f"http://127.0.0.1:{taken}/healthz",
                      program=[sys.executable], port=taken)
        supervisor.children.append(child)
        child.start()
        try:
            assert child.process is not None
            assert child.process.wait(30) != 0
            assert "Address already in use" in child.tail()
            assert [e.kind for e in supervisor.restart_crashed()] == ["crashed"]
            clock.now += 1
            events = supervisor.restart_crashed()
            assert [e.kind for e in events] == ["restarted"]
            assert child.port is not None and child.port != taken
            assert f"on port {child.port} (port {taken} was in use)" in events[0].text
            assert child.args[-1] == str(child.port)
            assert child.health_url == f"http://127.0.0.1:{child.port}/healthz"
            deadline = time.monotonic() + 30
            while True:  # it listens on its new port
                try:
                    socket.create_connection(("127.0.0.1", child.port), timeout=1).close()
                    break
                except OSError:
                    assert child.alive(), child.tail()
                    assert time.monotonic() < deadline, child.tail()
                    time.sleep(0.05)
        finally:
            child.stop()


def test_a_child_dies_with_its_parent_even_a_killed_one(tmp_path: Path) -> None:
    """A `Child` gets SIGTERM from the kernel when the process that started it dies, so a
    SIGKILLed `subnetlab up` (or pytest) leaves no neuron running."""
    script = ("import sys, time\n"
              "from pathlib import Path\n"
              "from subnetlab.local.processes import Child\n"
              "child = Child('sleeper', ['-c', 'import time; time.sleep(120)'], "
              f"Path({str(tmp_path / 'sleeper.log')!r}), program=[sys.executable])\n"
              "child.start()\n"
              "print(child.process.pid, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"child {pid} outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(10)


def test_the_runs_embedded_redis_dies_with_a_killed_up(tmp_path: Path) -> None:
    """`up` starts its run's Redis tied to itself: a SIGKILLed `up` leaves none behind."""
    data = tmp_path / "data"
    script = ("import time\n"
              "from pathlib import Path\n"
              "from subnetlab.ledger.redis_server import EmbeddedRedis\n"
              "from subnetlab.local.processes import die_with_parent\n"
              f"EmbeddedRedis(Path({str(data)!r})).ensure_running("
              "preexec_fn=die_with_parent())\n"
              "print('up', flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "up"
        pid = int((data / "redis.pid").read_text())
        assert _alive(pid)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"redis-server {pid} outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(10)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is dead)."""
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


# ---- progress lines and the view ---------------------------------------------------------


def test_each_finished_step_is_a_line_also_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100)
    assert not console.is_terminal
    with Steps(console) as steps:
        steps.step("starting the ledger")
        steps.update("still starting")  # progress within a step: the spinner only
        steps.step("creating subnet s")
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["starting the ledger: done",
                                                       "creating subnet s: done"]
    out.truncate(0)
    out.seek(0)
    with pytest.raises(RuntimeError), Steps(console) as steps:
        steps.step("registering")
        raise RuntimeError("refused")
    assert out.getvalue().startswith("registering: failed (")


def test_a_ledger_that_does_not_answer_is_shown_and_noted_once(tmp_path: Path) -> None:
    net, _ = network(tmp_path, neuron("m", "{subnet: s, role: miner}"))
    testnet = local.Testnet(net, tmp_path / "run")
    testnet.ledger_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    testnet.subnets.append(local.SubnetRun(net.subnets[0], 1, []))
    testnet.poll()
    testnet.poll()
    assert testnet.ledger_problem is not None
    assert testnet.ledger_problem.startswith("LedgerUnreachable: cannot reach the ledger at")
    assert len(testnet.events) == 1 and "not answering" in testnet.events[0]
    crashed = Child("miner-x", [], tmp_path / "x.log", given_up=True)
    testnet.supervisor.children.append(crashed)
    out = io.StringIO()
    Console(file=out, width=140).print(render(testnet, 0.0))
    view = out.getvalue()
    assert "subnet s (netuid 1)" in view and "N+V ratio -" in view
    assert "ledger not answering: LedgerUnreachable" in view
    assert "gave up restarting: miner-x" in view
    # the event is printed as a line by `LiveView` (once), not listed in the view again
    assert view.count("not answering") == 1


# ---- CLI folders ---------------------------------------------------------------------------


def test_folders_that_cannot_be_written_are_found_before_the_run(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    assert folder_problem(afile) == "exists and is not a directory"
    assert folder_problem(afile / "sub" / "dir") == f"cannot be created: {afile} is not a " \
        "directory"
    assert folder_problem(tmp_path / "new" / "dir") is None
    assert folder_problem(tmp_path) is None
    assert not (tmp_path / "new").exists()  # probing creates nothing


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_access_calls_writable_but_is_not_is_found(tmp_path: Path) -> None:
    # root passes every access() check, yet nothing can be created under /proc
    problem = folder_problem(Path("/proc/nope"))
    assert problem is not None and problem.startswith("cannot be created"), problem
    assert not Path("/proc/nope").exists()
