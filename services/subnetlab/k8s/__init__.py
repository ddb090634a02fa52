"""Kubernetes: the Subnet and Neuron CRDs and the kopf operator that reconciles them.

Pure modules (no I/O, unit-tested directly): `schema` (pydantic -> structural OpenAPI),
`crds` (the CustomResourceDefinitions), `status` (conditions and status bodies),
`resources` (Secret, Deployment and Service bodies), `keys` (hotkeys in Secrets), `plan`
(what to change on the ledger). Settings: `config` (flags or
the environment). I/O: `ledger` (the chain, through `LedgerClient`), `kube` (the API
server), `gateway` (the organic gateway's key Secrets), `logs` and `metrics`; the steps,
in order: `context` (what they share: clients, outcomes, status writes), `subnets` and
`neurons`; `handlers` (kopf wiring).
"""
