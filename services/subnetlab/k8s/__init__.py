"""Kubernetes: the Subnet and Neuron CRDs and the kopf operator that reconciles them.

Pure modules (no I/O, unit-tested directly): `schema` (pydantic -> structural OpenAPI),
`crds` (the CustomResourceDefinitions), `status` (conditions and status bodies),
`resources` (Secret, Deployment and Service bodies), `keys` (hotkeys in Secrets), `plan`
(what to change on the ledger). I/O: `ledger` (the chain, through `LedgerClient`), `kube`
(the API server), `reconcile` (the steps, in order), `handlers` (kopf wiring).
"""
