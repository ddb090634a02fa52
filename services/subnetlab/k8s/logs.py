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

import kopf

LEVELS = ("debug", "info", "warning", "error")


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
