"""`python -m subnetlab` is the same as the `subnetlab` command."""

from subnetlab.cli.main import run

run()
