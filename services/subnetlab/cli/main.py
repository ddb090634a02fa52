"""Entry point of the `subnetlab` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import typer

from subnetlab import __version__
from subnetlab.cli.bench import bench_app
from subnetlab.cli.chain_cmds import add_chain_commands
from subnetlab.cli.engine_cmds import engine_app
from subnetlab.cli.errors import CliError, OneLineTyper, fail
from subnetlab.cli.experiment_cmds import experiment_app
from subnetlab.cli.ledger_cmds import ledger_app
from subnetlab.cli.neuron_cmds import audit, miner_app, validator_app
from subnetlab.cli.operator_cmds import crds_app, operator_app
from subnetlab.cli.simulate import simulate_app
from subnetlab.cli.up_cmds import down, up
from subnetlab.cli.wallet_cmds import wallet_app

app = OneLineTyper(  # `subnetlab transferr` is one error line, like every other mistake
    name="subnetlab",
    help="Stand up, measure and attack a Bittensor-style incentive network.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(simulate_app, name="simulate")
app.add_typer(experiment_app, name="experiment")
app.add_typer(bench_app, name="bench")
app.add_typer(ledger_app, name="ledger")
app.add_typer(miner_app, name="miner")
app.add_typer(validator_app, name="validator")
app.command("audit")(audit)
app.add_typer(engine_app, name="engine")
app.command("up")(up)
app.command("down")(down)
app.add_typer(wallet_app, name="wallet")
app.add_typer(operator_app, name="operator")
app.add_typer(crds_app, name="crds")
add_chain_commands(app)


@app.command()
def version() -> None:
    """Print the subnetlab version."""
    typer.echo(__version__)


def run() -> None:
    """Console-script entry: any CliError becomes one line on stderr and exit code 2."""
    try:
        app()
    except CliError as exc:
        fail(str(exc))
