"""Binding a Subnet resource to an existing subnet (`spec.netuid`): the spec field, the
checks the operator makes before it manages someone's subnet, and who wins a netuid that
two resources ask for."""

from __future__ import annotations

from typing import Any

import pytest

from subnetlab.k8s.crds import SUBNET, render
from subnetlab.k8s.plan import binding_problem, netuid_claimant
from subnetlab.specs import SpecError, Subnet, parse_documents, validate_resource

LEDGER = "http://ledger:9944"


def subnet_doc(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Subnet",
            "metadata": {"name": "s"}, "spec": spec}


def resource(uid: str, created: str, spec_netuid: int | None = None,
             status_netuid: int | None = None, name: str = "other") -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": name, "namespace": "ns",
                         "creationTimestamp": created},
            "spec": {} if spec_netuid is None else {"netuid": spec_netuid},
            "status": {} if status_netuid is None else {"netuid": status_netuid}}


def test_netuid_is_optional_bounded_and_refused_by_subnetlab_up() -> None:
    assert validate_resource(Subnet, subnet_doc({}), "x").spec.netuid is None
    assert validate_resource(Subnet, subnet_doc({"netuid": 7}), "x").spec.netuid == 7
    with pytest.raises(SpecError, match=r"spec\.netuid: .*less than or equal to 65535"):
        validate_resource(Subnet, subnet_doc({"netuid": 70000}), "x")
    with pytest.raises(SpecError, match=r"^f\.yaml \(Subnet s\): spec\.netuid: .*`subnetlab "
                       r"up` starts a new chain"):
        parse_documents([("f.yaml", subnet_doc({"netuid": 3}))])


def test_the_crd_makes_netuid_immutable_including_adding_or_removing_it() -> None:
    text = render(SUBNET)
    assert "rule: has(self.netuid) == has(oldSelf.netuid)" in text
    assert "fieldPath: .netuid" in text


def test_binding_checks_ownership_existence_and_claims() -> None:
    info = {"netuid": 4, "owner": "5Owner"}
    assert binding_problem(4, info, "5Owner", None, LEDGER) is None
    reason, message = binding_problem(4, info, "5Someone", None, LEDGER) or ("", "")
    assert reason == "NotOwner"
    assert message == ("spec.netuid: subnet 4 is owned by 5Owner, not by this Subnet's owner "
                       "key 5Someone (spec.owner)")
    assert binding_problem(9, None, "5Owner", None, LEDGER) == (
        "UnknownNetuid", "spec.netuid: the ledger at http://ledger:9944 has no subnet 9")
    assert binding_problem(4, info, "5Owner", "ns/first", LEDGER) == (
        "NetuidTaken", "spec.netuid: netuid 4 is already managed by Subnet ns/first")


def test_the_older_claim_on_a_netuid_wins() -> None:
    me = ("u-me", "2026-12-01T10:00:05Z")
    # a resource that created or bound it (status) holds it, however young
    holder = resource("u-x", "2026-12-01T10:00:09Z", status_netuid=4, name="holder")
    assert netuid_claimant(4, *me, [holder]) == "ns/holder"
    # a spec asking for it: only an older one (or as old, with a smaller uid) wins
    older = resource("u-a", "2026-12-01T10:00:01Z", spec_netuid=4, name="older")
    younger = resource("u-z", "2026-12-01T10:00:09Z", spec_netuid=4, name="younger")
    tie_small = resource("u-a", me[1], spec_netuid=4, name="tie")
    tie_large = resource("u-z", me[1], spec_netuid=4, name="tie")
    assert netuid_claimant(4, *me, [older]) == "ns/older"
    assert netuid_claimant(4, *me, [younger]) is None
    assert netuid_claimant(4, *me, [tie_small]) == "ns/tie"
    assert netuid_claimant(4, *me, [tie_large]) is None
    # itself, and other netuids, never count
    assert netuid_claimant(4, *me, [resource("u-me", me[1], spec_netuid=4, status_netuid=4),
                                    resource("u-b", "2026", spec_netuid=5, status_netuid=5)]
                           ) is None
