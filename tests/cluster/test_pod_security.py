"""Pod hardening on the real API server: every pod generated from an example passes Pod Security
admission at the `restricted` level, and a service that loosens it is told so, then refused by the
admission, which has the last word.

Each Deployment's pod template is created as a Pod with a server-side dry run in a namespace labelled
`pod-security.kubernetes.io/enforce=restricted`: the admission judges exactly what the ReplicaSet
controller would create, with its own message, and without waiting for the pods.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubeserve.planning.naming import LABEL_SERVICE
from tests.cluster.isvc import EXAMPLES, Isvcs, example
from tests.polling import eventually

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture
def restricted(kube: k8s.ApiClient, namespace: str) -> Iterator[str]:
    k8s.CoreV1Api(kube).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    yield namespace


def templates(kube: k8s.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    """The pod templates of the service's Deployments, once the operator wrote them."""
    apps = k8s.AppsV1Api(kube)

    def written() -> list[dict[str, Any]] | None:
        deployments = apps.list_namespaced_deployment(
            namespace, label_selector=f"{LABEL_SERVICE}={name}"
        ).items
        return [kube.sanitize_for_serialization(d.spec.template) for d in deployments] or None

    found: list[dict[str, Any]] = eventually(written, timeout=20, what=f"the Deployments of {name}")
    return found


def admission_refusal(kube: k8s.ApiClient, namespace: str, template: dict[str, Any]) -> str | None:
    """What Pod Security admission says of a pod made from `template` (None: admitted). The ServiceAccount
    it names is made first, as the admission of a pod under a missing one fails before Pod Security's."""
    account = template["spec"].get("serviceAccountName")
    if account:
        try:
            k8s.CoreV1Api(kube).create_namespaced_service_account(namespace, {"metadata": {"name": account}})
        except ApiException as error:
            assert error.status == 409, error.body
    pod = {"metadata": {"generateName": "dry-", "labels": template["metadata"].get("labels", {})}}
    try:
        k8s.CoreV1Api(kube).create_namespaced_pod(namespace, {**pod, "spec": template["spec"]}, dry_run="All")
    except ApiException as error:
        message: str = json.loads(error.body)["message"]
        return message
    return None


@pytest.mark.parametrize("file", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_every_examples_pods_pass_the_restricted_level(
    kube: k8s.ApiClient, restricted: str, operator: Path, file: str
) -> None:
    body = example(file)
    isvcs = Isvcs(kube, restricted)
    isvcs.apply(body)
    name = body["metadata"]["name"]
    for template in templates(kube, restricted, name):
        assert admission_refusal(kube, restricted, template) is None
    condition = isvcs.wait_condition(name, "PodHardened", status="True", timeout=20)
    assert condition["reason"] == "Restricted"


def test_loosening_is_a_warning_and_pod_security_admission_refuses_the_pods(
    kube: k8s.ApiClient, restricted: str, operator: Path
) -> None:
    body = example("sklearn-iris.yaml")
    body["spec"]["predictor"]["model"]["securityContext"] = {"privileged": True, "runAsUser": 0}
    isvcs = Isvcs(kube, restricted)
    isvcs.apply(body)
    condition = isvcs.wait_condition("sklearn-iris", "PodHardened", status="False", timeout=20)
    assert condition["reason"] == "HardeningLoosened"
    assert (
        "predictor: containers[kserve-container].securityContext.privileged is true" in condition["message"]
    )
    assert "runAsUser is 0 (root)" in condition["message"]
    [template] = templates(kube, restricted, "sklearn-iris")
    refusal = admission_refusal(kube, restricted, template)
    assert refusal is not None and 'violates PodSecurity "restricted' in refusal and "privileged" in refusal
    core = k8s.CoreV1Api(kube)
    eventually(
        lambda: [
            e
            for e in core.list_namespaced_event(restricted).items
            if e.involved_object.name == "sklearn-iris"
            and e.reason == "HardeningLoosened"
            and e.type == "Warning"
        ],
        timeout=10,
        what="the Warning Event",
    )
