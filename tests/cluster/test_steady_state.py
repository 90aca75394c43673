"""A settled operator sends no writes, a restarted one neither; drift is undone; deletion collects children.

Writes are counted from the API server's audit log, by the operator's User-Agent
(`kubeserve-operator/<version> (<host>/<pid>)`), so a second operator started
here is told apart from the session's own.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from kubeserve.apply.client import USER_AGENT_PRODUCT
from kubeserve.devcluster.audit import AuditTail, Request
from tests.cluster.isvc import GROUP, PLURAL, VERSION, Isvcs, example
from tests.cluster.quiet import QUIET_WINDOW
from tests.operator_run import running_operator
from tests.polling import eventually

SETTLE = 2.0
"""A service counts as settled once the operator has sent it nothing for this long."""


def _autoscaled() -> dict[str, Any]:
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = "iris-hpa"
    body["spec"]["predictor"].update({"minReplicas": 1, "maxReplicas": 3, "scaleTarget": 70})
    return body


def _services() -> list[dict[str, Any]]:
    """A plain predictor, a transformer in front of a predictor, and one with an HPA."""
    return [example("sklearn-iris.yaml"), example("transformer.yaml"), _autoscaled()]


def _operator_writes(tail: AuditTail, namespace: str, agent: str = USER_AGENT_PRODUCT) -> list[Request]:
    return [r for r in tail.writes(agent) if r.namespace == namespace]


def _settle(audit_log: Path, namespace: str, timeout: float = 60.0) -> None:
    """Wait until the operator has sent no write to `namespace` for SETTLE seconds."""

    def quiet() -> bool:
        tail = AuditTail(audit_log)
        time.sleep(SETTLE)
        return not _operator_writes(tail, namespace)

    eventually(quiet, timeout, f"the operator to stop writing to {namespace}", interval=0)


def _ready(isvcs: Isvcs, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        isvcs.apply(body)
    for body in bodies:
        isvcs.wait_ready(body["metadata"]["name"], timeout=60)


def test_steady_state_is_silent(kube: k8s.ApiClient, namespace: str, operator: Path, audit_log: Path) -> None:
    """Settled services, then harmless touches, get no write for QUIET_WINDOW, twice the operator's
    longest timer (tests/cluster/quiet.py): it catches a writer of a period up to 30 s (the re-list of an
    unserved route CRD; the lease renewal is shorter), not one woken only by the 300 s watch renewal."""
    isvcs = Isvcs(kube, namespace)
    creation = AuditTail(audit_log)
    _ready(isvcs, _services())
    _settle(audit_log, namespace)

    # The same counter sees the writes that creating the services took, so zero below means zero.
    made = {(r.resource, r.subresource) for r in _operator_writes(creation, namespace)}
    assert {
        ("deployments", ""),
        ("services", ""),
        ("horizontalpodautoscalers", ""),
        ("inferenceservices", "status"),
    } <= made

    # Harmless touches at the start of the window: a label on the service (used by no child) and one
    # on a Deployment (not ours); then the window runs long enough for every timer to fire twice.
    quiet = AuditTail(audit_log)
    isvcs.api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "sklearn-iris", {"metadata": {"labels": {"team": "vision"}}}
    )
    k8s.AppsV1Api(kube).patch_namespaced_deployment(
        "iris-hpa-predictor", namespace, {"metadata": {"labels": {"cost-centre": "42"}}}
    )
    time.sleep(QUIET_WINDOW)
    assert _operator_writes(quiet, namespace) == []


@pytest.fixture
def own_operator(
    kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A second `kubeserve run`, watching only the test's namespace, logging every reconcile."""
    log_path = tmp_path / "operator.log"
    with running_operator(kubeconfig, log_path, "--namespace", namespace, "--debug") as process:
        yield process, log_path


def test_a_restarted_operator_examines_every_service_and_writes_nothing(
    kube: k8s.ApiClient,
    namespace: str,
    operator: Path,
    audit_log: Path,
    request: pytest.FixtureRequest,
) -> None:
    """From its start until QUIET_WINDOW later (tests/cluster/quiet.py), the restarted operator writes
    nothing: neither its first reconcile of every service nor a timer of a period up to 30 s."""
    isvcs = Isvcs(kube, namespace)
    bodies = _services()
    _ready(isvcs, bodies)
    _settle(audit_log, namespace)

    restart, started = AuditTail(audit_log), time.monotonic()
    process, log_path = request.getfixturevalue("own_operator")
    names = {b["metadata"]["name"] for b in bodies}
    reconciled = re.compile(rf"{re.escape(namespace)}/([a-z0-9-]+): reconciled")

    def examined() -> set[str]:
        seen = set(reconciled.findall(log_path.read_text(errors="replace")))
        return seen if names <= seen else set()

    eventually(examined, 60, f"the new operator to reconcile {sorted(names)}; log at {log_path}")
    time.sleep(max(SETTLE, started + QUIET_WINDOW - time.monotonic()))
    assert process.poll() is None, log_path.read_text()
    ours = [r for r in restart.writes(USER_AGENT_PRODUCT) if f"/{process.pid})" in r.user_agent]
    assert ours == []
    assert _operator_writes(restart, namespace) == []


def _predictor(kube: k8s.ApiClient, namespace: str, name: str = "sklearn-iris-predictor") -> Any:
    return k8s.AppsV1Api(kube).read_namespaced_deployment(name, namespace)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "kserve-container", "image": "evil:1"}]}}
                }
            },
            id="image",
        ),
        pytest.param({"spec": {"replicas": 4}}, id="replicas"),
    ],
)
def test_a_deployment_edited_by_hand_is_restored(
    kube: k8s.ApiClient, namespace: str, operator: Path, audit_log: Path, edit: dict[str, Any]
) -> None:
    isvcs = Isvcs(kube, namespace)
    _ready(isvcs, [example("sklearn-iris.yaml")])
    _settle(audit_log, namespace)
    before = _predictor(kube, namespace)
    applied = before.metadata.annotations["serving.kubeserve.io/applied-hash"]

    drift = AuditTail(audit_log)
    apps = k8s.AppsV1Api(kube)
    # The patch's answer, not a read after it: the operator may have restored the object already.
    edited: Any = apps.patch_namespaced_deployment("sklearn-iris-predictor", namespace, edit)
    assert edited.metadata.annotations["serving.kubeserve.io/applied-hash"] == applied
    assert (edited.spec.replicas, edited.spec.template.spec.containers[0].image) != (
        before.spec.replicas,
        before.spec.template.spec.containers[0].image,
    )

    def restored() -> bool:
        now = _predictor(kube, namespace)
        return (now.spec.replicas, now.spec.template.spec.containers[0].image) == (
            before.spec.replicas,
            before.spec.template.spec.containers[0].image,
        )

    eventually(restored, 10, "the Deployment to be restored")
    assert [
        (r.resource, r.name) for r in _operator_writes(drift, namespace) if r.resource == "deployments"
    ] == [("deployments", "sklearn-iris-predictor")]


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param([{"op": "replace", "path": "/spec/ports/0/port", "value": 9999}], id="port"),
        pytest.param(
            [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 9000}], id="target-port"
        ),
        pytest.param([{"op": "replace", "path": "/spec/ports/0/name", "value": "web"}], id="port-name"),
        pytest.param(
            [
                {
                    "op": "add",
                    "path": "/spec/ports/-",
                    "value": {"name": "extra", "port": 81, "targetPort": 81},
                }
            ],
            id="added-port",
        ),
        pytest.param([{"op": "replace", "path": "/spec/selector/component", "value": "x"}], id="selector"),
    ],
)
def test_a_service_edited_by_hand_is_restored(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, operator: Path, patch: list[dict[str, Any]]
) -> None:
    """A port re-keyed by hand (80 to 9999, same name) once made every apply a 422 (two ports named
    `http`) while the service stayed Ready: the operator owns the list of ports whole."""
    isvcs = Isvcs(kube, namespace)
    _ready(isvcs, [example("sklearn-iris.yaml")])
    core = k8s.CoreV1Api(kube)

    def spec() -> tuple[list[tuple[str, int, int]], dict[str, str]]:
        service = core.read_namespaced_service("sklearn-iris-predictor", namespace)
        ports = [(p.name, p.port, int(p.target_port)) for p in service.spec.ports]
        return ports, service.spec.selector

    before = spec()
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            kubeconfig,
            "patch",
            "service",
            "sklearn-iris-predictor",
            "-n",
            namespace,
            "--type=json",
            "-p",
            json.dumps(patch),
        ],
        check=True,
        capture_output=True,
    )
    eventually(lambda: spec() == before, 10, "the Service to be restored")
    ready = isvcs.condition("sklearn-iris", "Ready")
    assert ready is not None and ready["status"] == "True", ready


@pytest.mark.parametrize("kind", ["Deployment", "Service"])
def test_a_child_deleted_by_hand_comes_back(
    kube: k8s.ApiClient, namespace: str, operator: Path, audit_log: Path, kind: str
) -> None:
    isvcs = Isvcs(kube, namespace)
    _ready(isvcs, [example("sklearn-iris.yaml")])
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    clients: dict[str, tuple[Callable[[str, str], Any], Callable[[str, str], Any]]] = {
        "Deployment": (apps.read_namespaced_deployment, apps.delete_namespaced_deployment),
        "Service": (core.read_namespaced_service, core.delete_namespaced_service),
    }
    read, delete = clients[kind]
    old_uid = read("sklearn-iris-predictor", namespace).metadata.uid
    delete("sklearn-iris-predictor", namespace)

    def recreated() -> bool:
        try:
            return bool(read("sklearn-iris-predictor", namespace).metadata.uid != old_uid)
        except k8s.ApiException as error:
            if error.status == 404:
                return False
            raise

    eventually(recreated, 10, f"the {kind} to be re-created")
    isvcs.wait_ready("sklearn-iris")


def test_deleting_the_service_collects_its_children(
    kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    _ready(isvcs, [_autoscaled()])
    selector = "serving.kubeserve.io/inferenceservice=iris-hpa"
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    autoscaling = k8s.AutoscalingV2Api(kube)

    def children() -> list[str]:
        listings: tuple[tuple[str, Callable[..., Any]], ...] = (
            ("Deployment", apps.list_namespaced_deployment),
            ("Service", core.list_namespaced_service),
            ("HorizontalPodAutoscaler", autoscaling.list_namespaced_horizontal_pod_autoscaler),
            ("Pod", core.list_namespaced_pod),
        )
        return [
            f"{kind}/{item.metadata.name}"
            for kind, listing in listings
            for item in listing(namespace, label_selector=selector).items
        ]

    assert {c.split("/")[0] for c in children()} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Pod",
    }
    isvcs.delete("iris-hpa")
    eventually(lambda: not children(), 60, "garbage collection of the service's children")
