"""`subnetlab operator run` and `subnetlab crds generate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from subnetlab import __version__
from subnetlab.cli.errors import OneLineTyper, fail
from subnetlab.cli.shared import ledger_option

if TYPE_CHECKING:
    from subnetlab.k8s.config import OperatorConfig

operator_app = OneLineTyper(help="Run the Kubernetes operator.")
crds_app = OneLineTyper(help="The Subnet and Neuron CustomResourceDefinitions.")

DEFAULT_CRD_DIRS = [Path("manifests/crds"), Path("helm/subnetlab/crds")]
"""Both copies: `kubectl apply -f manifests/crds/`, and the chart's crds/ folder (Helm
cannot read files outside the chart, so the chart needs its own copy)."""


@crds_app.command("generate")
def crds_generate(
    out: Annotated[
        list[Path] | None,
        typer.Option("--out", help="Directory to write (repeatable); default: manifests/crds "
                     "and helm/subnetlab/crds."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a file is stale.")
    ] = False,
) -> None:
    """Write the CRDs generated from the spec models (one file per kind) into each directory."""
    from subnetlab.k8s.crds import rendered

    files = rendered()
    if out is None and not all(d.parent.is_dir() for d in DEFAULT_CRD_DIRS):
        # Outside a checkout the default folders are not there: say so, rather than
        # report files nobody has as stale, or create a repository layout in a random cwd.
        fail(f"--out: {' and '.join(str(d.parent) for d in DEFAULT_CRD_DIRS)} are not in "
             f"{Path.cwd()}: run in the repository's root, or give --out DIR")
    dirs = out or DEFAULT_CRD_DIRS
    if check:
        missing = [str(d / name) for d in dirs for name in files if not (d / name).is_file()]
        stale = [str(d / name) for d in dirs for name, text in files.items()
                 if (d / name).is_file() and (d / name).read_text() != text]
        if missing or stale:
            found = [f"{label}: {', '.join(paths)}" for label, paths in
                     (("missing CRDs", missing), ("stale CRDs", stale)) if paths]
            again = "".join(f" --out {d}" for d in out or [])
            fail(f"{'; '.join(found)} (run `subnetlab crds generate{again}`)", code=1)
        typer.echo(f"{len(files)} CRDs in {', '.join(map(str, dirs))} are up to date")
        return
    for d in dirs:
        if d.exists() and not d.is_dir():
            fail(f"--out {d}: exists and is not a directory")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (d / name).write_text(text)
            typer.echo(str(d / name))


@operator_app.command("run")
def operator_run(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")
    ] = False,
    ledger: Annotated[
        str | None, ledger_option("Ledger URL the operator uses (or $SUBNETLAB_LEDGER).")
    ] = None,
    pod_ledger: Annotated[
        str | None, typer.Option("--pod-ledger", help="Ledger URL for neuron pods.")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image of miner/validator containers.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Validators' evidence store.")
    ] = None,
    sync_interval: Annotated[
        float | None, typer.Option("--sync-interval", help="Seconds between status syncs.")
    ] = None,
    delete_give_up: Annotated[
        float | None,
        typer.Option("--delete-give-up", help="Seconds a finalizer waits for the ledger."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Prometheus port (0: off).")
    ] = None,
    liveness: Annotated[
        str | None, typer.Option("--liveness", help="Liveness endpoint URL ('' : off).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
) -> None:
    """Reconcile Subnet and Neuron resources against the ledger (runs until stopped).

    Every option also reads its SUBNETLAB_OPERATOR_* variable (the ledger:
    SUBNETLAB_LEDGER); flags win.
    """
    from subnetlab.k8s.config import ConfigError, OperatorConfig

    flags = {"ledger_url": ledger, "pod_ledger_url": pod_ledger, "image": image,
             "redis_url": redis_url, "sync_interval_s": sync_interval,
             "delete_give_up_s": delete_give_up, "metrics_port": metrics_port,
             "liveness_endpoint": liveness, "log_level": log_level}
    try:
        config = OperatorConfig.load(flags)
    except ConfigError as exc:
        fail(str(exc))
    if not namespace and not all_namespaces:
        fail("--namespace NS (repeatable) or --all-namespaces: say what to watch")
    if namespace and all_namespaces:
        fail("--namespace and --all-namespaces are exclusive")
    os.environ.update(config.to_env())  # the handlers read the sync interval at import
    _run_kopf(config, namespace or [], all_namespaces)


def _run_kopf(config: OperatorConfig, namespaces: list[str], clusterwide: bool) -> None:
    """Configure logs (JSON lines, one object per line, nothing else on stderr; kopf's own
    lines only from warnings up unless debugging) and hand over to kopf until the process
    is stopped."""
    import logging

    import kopf

    from subnetlab.k8s.logs import configure_operator_logging

    configure_operator_logging(config.log_level)
    from subnetlab.k8s import handlers  # noqa: F401  (importing registers the handlers)

    logging.getLogger("subnetlab.k8s").info(
        "subnetlab operator %s: ledger %s, %s, metrics :%s, liveness %s", __version__,
        config.ledger_url,
        "all namespaces" if clusterwide else "namespaces " + ", ".join(namespaces),
        config.metrics_port, config.liveness_endpoint or "off")
    kopf.run(clusterwide=clusterwide, namespaces=namespaces, standalone=True,
             liveness_endpoint=config.liveness_endpoint or None,
             memo=kopf.Memo(config=config))
