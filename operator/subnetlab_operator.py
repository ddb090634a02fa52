"""Entry point for `kopf run operator/subnetlab_operator.py` (the Helm chart's operator image
uses `subnetlab operator run`, which loads the same handlers).

Why a file and not a package: a top-level package named `operator` would shadow Python's
standard library module. The handlers live in `subnetlab.k8s.handlers`; importing it
registers them with kopf, which is all this file does.
"""

from subnetlab.k8s import handlers  # noqa: F401  (importing registers the handlers)
