"""The operator's logs: JSON lines, quiet by default.

kopf logs every retried handler as an error ("... failed temporarily: ..."); for this
operator a retry is routine (a Subnet not created yet, the ledger away for a moment), and
the reason is in the object's status and in one transition line of our own
(`subnetlab.k8s`). So those lines are demoted to info, and shown only when kopf's own
logger is verbose (`--log-level debug`). httpx's per-request lines are dropped the same
way. Secrets never reach a log: key material is never formatted into a message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

LEVELS = ("debug", "info", "warning", "error")
log = logging.getLogger("subnetlab.k8s")


def object_ref(body: Mapping[str, Any]) -> dict[str, str]:
    """What kopf's JSON formatter writes as a line's `object`: the resource it is about."""
    meta = body["metadata"]
    return {"apiVersion": str(body.get("apiVersion", "")), "kind": str(body.get("kind", "")),
            "namespace": str(meta.get("namespace", "")), "name": str(meta["name"]),
            "uid": str(meta.get("uid", ""))}


def log_deleted(body: Mapping[str, Any], summary: str, released: Mapping[str, Any],
                level: int = logging.INFO) -> None:
    """One line per deleted Subnet or Neuron, once its finalizer is done: `KIND NS/NAME
    deleted: SUMMARY`, with the object and what was released on the ledger as fields
    (`event: deleted`, `released: {...}`: no key material, addresses only)."""
    ref = object_ref(body)
    log.log(level, "%s %s/%s deleted: %s", ref["kind"], ref["namespace"], ref["name"], summary,
            extra={"k8s_ref": ref, "event": "deleted", "released": dict(released)})


def log_stopped(ledger_url: str, objects: int) -> None:
    """The operator's last line (kopf's cleanup): it stopped on purpose, and what it left."""
    log.info("operator stopped: %d Subnet/Neuron objects were being reconciled; they keep "
             "their state and the next operator resumes them (ledger %s)", objects, ledger_url,
             extra={"event": "stopped", "objects": objects, "ledger": ledger_url})


class RoutineRetryFilter(logging.Filter):
    """Demote kopf's "failed temporarily" errors to info (dropped unless kopf is verbose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name.startswith("kopf") and record.levelno == logging.ERROR
                and "failed temporarily" in record.getMessage()):
            if not logging.getLogger("kopf").isEnabledFor(logging.INFO):
                return False
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_libraries(debug: bool = False) -> None:
    """Library loggers at warning (debug: everything), and routine retries demoted."""
    for name in ("httpx", "httpcore", "kubernetes", "urllib3", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("kopf").setLevel(logging.DEBUG if debug else logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RoutineRetryFilter) for f in handler.filters):
            handler.addFilter(RoutineRetryFilter())


def configure_operator_logging(level: str) -> None:
    """JSON lines on stderr (warnings included); subnetlab's own loggers at `level`."""
    level = level.lower()
    debug = level == "debug"
    kopf.configure(debug=debug, verbose=debug, log_format=kopf.LogFormat.JSON)
    logging.captureWarnings(True)  # a library's warning becomes a JSON line too
    quiet_libraries(debug)
    logging.getLogger("subnetlab").setLevel(level.upper())
