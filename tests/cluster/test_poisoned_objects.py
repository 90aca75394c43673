"""One InferenceService nested too deep for a recursive decoder never stops the operator.

The API server accepts JSON nested up to about 10000 levels, and an
InferenceService's `affinity` is free-form, so a tenant can store one nested
far deeper than Python's recursion limit (about 1000). The operator must keep
watching, listing and reconciling everything else, give that service a False
Ready condition and a Warning Event, and become ready when it starts with
the object already there.

The deep objects are written and read with kubectl: the kubernetes package's
own JSON handling would hit the same recursion limit in the test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from kubeserve.devcluster.ports import free_port
from tests.cluster.isvc import Isvcs, example
from tests.operator_run import running_operator
from tests.polling import eventually

DEPTHS = {"deep-2000": 2000, "deep-900": 900}
"""2000 is beyond any recursive decoder; 900 decodes, but is beyond what the operator plans from."""
SPEC_DEPTH_WORDS = "nested deeper than 64 levels"

pytestmark = pytest.mark.usefixtures("session_operator_stopped")


def deep_service(name: str, depth: int) -> str:
    """An InferenceService whose predictor affinity nests `depth` objects, as JSON text."""
    body = {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"},
                "affinity": "AFFINITY",
            }
        },
    }
    return json.dumps(body).replace('"AFFINITY"', '{"a":' * depth + "{}" + "}" * depth)


def kubectl(kubeconfig: str, namespace: str, *args: str, text: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "--namespace", namespace, *args],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def ready_condition(kubeconfig: str, namespace: str, name: str) -> dict[str, Any] | None:
    text = kubectl(kubeconfig, namespace, "get", "isvc", name, "-o", "jsonpath={.status.conditions}")
    conditions: list[dict[str, Any]] = json.loads(text) if text else []
    return next((c for c in conditions if c["type"] == "Ready"), None)


class Operator:
    """`kubeserve run` for one namespace, with its /healthz and /readyz."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def status(self, path: str) -> int | None:
        try:
            return httpx.get(self.base + path, timeout=5).status_code
        except httpx.TransportError:
            return None


@contextmanager
def operator_in(kubeconfig: str, namespace: str, log: Path) -> Iterator[Operator]:
    port = free_port()
    with running_operator(kubeconfig, log, "--namespace", namespace, "--http-address", f"127.0.0.1:{port}"):
        operator = Operator(port)
        eventually(lambda: operator.status("/healthz") == 200, 30, "the operator's /healthz")
        yield operator


def apply_deep_services(kubeconfig: str, namespace: str) -> None:
    for name, depth in DEPTHS.items():
        kubectl(kubeconfig, namespace, "create", "-f", "-", text=deep_service(name, depth))


def assert_refused_with_a_warning(kube: k8s.ApiClient, kubeconfig: str, namespace: str) -> None:
    for name in DEPTHS:
        ready = eventually(
            lambda name=name: ready_condition(kubeconfig, namespace, name), 30, f"a Ready condition on {name}"
        )
        assert (ready["status"], ready["reason"]) == ("False", "TooDeep"), ready
        assert SPEC_DEPTH_WORDS in ready["message"] and "spec.predictor.affinity" in ready["message"]
        eventually(
            lambda name=name: [
                e
                for e in k8s.CoreV1Api(kube).list_namespaced_event(namespace).items
                if e.involved_object.name == name and e.reason == "TooDeep" and e.type == "Warning"
            ],
            what=f"a Warning event TooDeep on {name}",
        )


def test_a_deep_service_gets_a_verdict_and_the_others_keep_reconciling(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, installed: None, tmp_path: Path
) -> None:
    with operator_in(kubeconfig, namespace, tmp_path / "operator.log") as operator:
        eventually(lambda: operator.status("/readyz") == 200, 30, "the operator ready")
        apply_deep_services(kubeconfig, namespace)
        isvcs = Isvcs(kube, namespace)
        isvcs.apply(example("sklearn-iris.yaml"))
        isvcs.wait_ready("sklearn-iris")
        assert_refused_with_a_warning(kube, kubeconfig, namespace)
        assert operator.status("/healthz") == 200


def test_an_operator_started_beside_a_deep_service_becomes_ready(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, installed: None, tmp_path: Path
) -> None:
    apply_deep_services(kubeconfig, namespace)
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(example("sklearn-iris.yaml"))
    with operator_in(kubeconfig, namespace, tmp_path / "operator.log") as operator:
        eventually(lambda: operator.status("/readyz") == 200, 30, "the operator ready beside a deep service")
        isvcs.wait_ready("sklearn-iris")
        assert_refused_with_a_warning(kube, kubeconfig, namespace)
        assert operator.status("/healthz") == 200
