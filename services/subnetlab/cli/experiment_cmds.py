"""`subnetlab experiment`: list the experiments, run a sweep, gather the findings report.

Only I/O lives here (flags, progress, files); the sweep grammar, the runs and the numbers
are in `subnetlab.experiments`. Each experiment's sweep flags are its own, so `run` takes
the arguments Typer does not know and hands them to the experiment's parameter list.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from subnetlab.cli.errors import OneLineCommand, OneLineTyper, checked, fail

experiment_app = OneLineTyper(help="Test the essay's claims: seeded sweeps, plots, findings.")

stderr = Console(stderr=True)


class RunCommand(OneLineCommand):
    """`experiment run`: options Typer does not know are the experiment's sweep flags, so
    they must follow NAME; one before NAME is no option of any experiment."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {opt for p in self.params if not getattr(p, "is_flag", False)
                       for opt in p.opts}
        known = {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)}
        known |= set(self.get_help_option_names(ctx))
        i = 0
        while i < len(args) and args[i].startswith("-"):
            flag = args[i].partition("=")[0]
            if flag not in known:
                fail(f"No such option: {flag} (see `{ctx.command_path} --help`)")
            i += 2 if flag in takes_value and "=" not in args[i] else 1
        return super().parse_args(ctx, args)


@experiment_app.command("list")
def list_experiments(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per experiment.")
                       ] = False,
) -> None:
    """Name the claims and the experiments that test them, with their sweep flags."""
    from subnetlab.experiments.catalog import EXPERIMENTS

    if as_json:
        for e in EXPERIMENTS.values():
            typer.echo(json.dumps({
                "name": e.name, "claim": e.claim, "claim_text": e.claim_text,
                "measures": e.measures, "simulated": list(e.simulated), "real": list(e.real),
                "flags": {p.flag: {"field": p.field, "help": p.help, "bounds": p.bounds(),
                                   "default": list(p.default), "quick": list(p.quick)}
                          for p in e.params}}))
        return
    table = Table(title="experiments (subnetlab experiment run NAME [sweep flags]; each flag "
                  "a comma-separated list within its bounds)")
    for column in ("name", "claim", "measures", "sweep flags"):
        table.add_column(column)
    for e in EXPERIMENTS.values():
        table.add_row(e.name, f"{e.claim}. {e.claim_text}", e.measures,
                      "\n".join(f"{p.flag} {p.bounds()}" for p in e.params))
    Console().print(table)


@experiment_app.command(
    "run", cls=RunCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Each experiment takes its own sweep flags, each a comma-separated list "
    "(e.g. cabal: --stake-shares 0.2,0.4 --kappa 0.3,0.5): `subnetlab experiment list` "
    "names them with their bounds and defaults.")
def run_experiment(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The experiment (see `experiment list`).")],
    quick: Annotated[bool, typer.Option("--quick", help="Small default grids and epochs.")
                     ] = False,
    seeds: Annotated[int | None, typer.Option(
        "--seeds", min=1, max=1000,
        help="Seeds per point (default: 3, or 2 with --quick).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=256,
                                      help="Points run in parallel (processes).")] = 1,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory for results.json, the figure and report.md "
        "(default: ./experiments/NAME).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per point.")
                       ] = False,
    kubernetes: Annotated[str | None, typer.Option(
        "--kubernetes", metavar="NAMESPACE",
        help="Run each point as a Kubernetes Job in NAMESPACE (the cluster of $KUBECONFIG), "
        "--jobs at a time, and gather the rows here.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="With --kubernetes: the subnetlab image the Jobs run "
        "(default: this release's, subnetlab:VERSION).")] = None,
) -> None:
    """Run a sweep: every point of the grid, each seed, one self-contained run each."""
    from subnetlab.cli.folders import folder_problem
    from subnetlab.experiments.catalog import EXPERIMENTS
    from subnetlab.experiments.outputs import document, write_sweep
    from subnetlab.experiments.runner import InOrder, PointError, run_points
    from subnetlab.experiments.sweep import command_line, expand, parse_flags
    from subnetlab.k8s.point_jobs import namespace_problem

    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        fail(f"NAME: no experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    if image is not None and kubernetes is None:
        fail("--image applies only with --kubernetes NAMESPACE")
    if kubernetes is not None and (problem := namespace_problem(kubernetes)):
        fail(f"--kubernetes {kubernetes!r}: {problem}")
    grid = checked(parse_flags, experiment.params, list(ctx.args), quick, name)
    count = seeds or (experiment.quick_seeds if quick else experiment.default_seeds)
    directory = out if out is not None else Path("experiments") / name
    if problem := folder_problem(directory):
        fail(f"--out {directory}: {problem}")
    seed_list = list(range(seed, seed + count))
    points = experiment.narrow(expand(grid, seed_list))
    command = command_line(name, experiment.params, grid, count, seed,
                           None if out is None else str(out))
    started = time.monotonic()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=stderr,
                  transient=False) as progress:
        task = progress.add_task(f"{name}: {len(points)} points, {jobs} job(s)",
                                 total=len(points))
        emit = (lambda row: typer.echo(json.dumps(row))) if as_json else (lambda row: None)
        try:
            if kubernetes is None:
                rows = run_points(name, points, jobs, emit=emit,
                                  done=lambda: progress.advance(task))
            else:
                rows = _run_on_kubernetes(name, points, kubernetes, image, jobs,
                                          InOrder(len(points), emit,
                                                  lambda: progress.advance(task)))
        except PointError as exc:
            fail(str(exc))
    doc = document(experiment, command, quick, seed_list, {k: list(v) for k, v in grid.items()},
                   rows)
    written = checked(write_sweep, directory, experiment, doc)
    stderr.print(f"{len(rows)} points in {time.monotonic() - started:.1f} s; wrote "
                 + ", ".join(str(p) for p in written), soft_wrap=True, highlight=False)
    stderr.print(f"verdict: {experiment.verdict(rows)}", soft_wrap=True, highlight=False)


def _run_on_kubernetes(name: str, points: list[dict[str, Any]], namespace: str,
                       image: str | None, jobs: int, rows: Any) -> list[dict[str, Any]]:
    """The sweep's points as Jobs (`subnetlab.k8s.point_jobs`); a refusal is one line."""
    import asyncio

    from subnetlab.experiments.runner import PointError
    from subnetlab.k8s.config import DEFAULT_IMAGE
    from subnetlab.k8s.kube import Kube
    from subnetlab.k8s.point_jobs import JobSettings, PointJobError, run_point_jobs

    settings = JobSettings(namespace=namespace, image=image or DEFAULT_IMAGE, parallel=jobs)

    async def run() -> list[dict[str, Any]]:
        try:
            kube = Kube.from_environment()
        except Exception as exc:  # kubernetes.config raises its own types, and OSError
            raise PointError(f"--kubernetes: no cluster configured ({exc})") from None
        try:
            return await run_point_jobs(kube, name, points, settings, rows.finish)
        except PointJobError as exc:
            raise PointError(f"experiment {name}: {exc}") from None
        finally:
            await kube.aclose()

    result: list[dict[str, Any]] = asyncio.run(run())
    return result


@experiment_app.command("point", hidden=False)
def run_point(
    name: Annotated[str, typer.Argument(help="The experiment (see `experiment list`).")],
    point: Annotated[str, typer.Option(
        "--point", help="The point as a JSON object: the experiment's fields and `seed`, "
        "as `experiment run --json` prints them.")],
) -> None:
    """Run one point and print its row as JSON: what each Job of `--kubernetes` runs."""
    from subnetlab.experiments.catalog import EXPERIMENTS
    from subnetlab.experiments.runner import PointError, run_points
    from subnetlab.experiments.sweep import point_problem

    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        fail(f"NAME: no experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    try:
        parsed = json.loads(point)
    except ValueError as exc:
        fail(f"--point: not JSON ({exc})")
    if problem := point_problem(experiment.params, parsed):
        fail(f"--point: {problem}")
    try:
        row = run_points(name, [parsed], 1)[0]
    except PointError as exc:
        fail(str(exc))
    typer.echo(json.dumps(row))


@experiment_app.command("report")
def report(
    findings: Annotated[Path, typer.Option(
        "--findings", help="Directory holding NAME/results.json per experiment.")
    ] = Path("docs/findings"),
    out: Annotated[Path, typer.Option("--out", help="The markdown file to write.")
                   ] = Path("docs/findings.md"),
) -> None:
    """Gather committed results into a findings report: claim, command, figure, verdict."""
    from subnetlab.experiments.findings import write_findings

    written = checked(write_findings, findings, out)
    stderr.print("wrote " + ", ".join(str(p) for p in written), soft_wrap=True,
                 highlight=False)
