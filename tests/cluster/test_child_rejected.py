"""A spec the API server accepts but whose children it refuses still gets a verdict: a False Ready
condition in the API server's own words (`ChildRejected`) and a Warning Event, not a line in the
operator's log; fixing the spec clears it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs, example
from tests.polling import eventually

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # env[0] is the server's STORAGE_URI: kubeserve-server fetches its own model.
    ("env-name", {"env": [{"name": "BAD=NAME", "value": "1"}]}, "env[1].name"),
    (
        "privileged-without-escalation",
        {"securityContext": {"privileged": True, "allowPrivilegeEscalation": False}},
        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
    ),
    ("negative-cpu", {"resources": {"requests": {"cpu": "-1"}}}, "must be greater than or equal to 0"),
]


@pytest.mark.parametrize(("case", "fields", "words"), REFUSED, ids=[case for case, *_ in REFUSED])
def test_a_refused_child_is_a_false_condition_and_an_event_until_the_spec_is_fixed(
    kube: k8s.ApiClient, namespace: str, operator: object, case: str, fields: dict[str, Any], words: str
) -> None:
    isvcs = Isvcs(kube, namespace)
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = case
    body["spec"]["predictor"]["model"].update(fields)
    isvcs.apply(body)
    condition = isvcs.wait_condition(case, "Ready", status="False", reason="ChildRejected", timeout=20)
    assert "the API server refused" in condition["message"] and words in condition["message"]
    core = k8s.CoreV1Api(kube)
    eventually(
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.involved_object.name == case and e.reason == "ChildRejected" and e.type == "Warning"
        ],
        timeout=10,
        what="the Warning Event",
    )
    isvcs.apply(example("sklearn-iris.yaml") | {"metadata": {"name": case}})
    isvcs.wait_ready(case, timeout=30)
