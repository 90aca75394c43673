"""Scale to zero on the control plane: the routing EndpointSlice follows the pods' readiness.

An operator with `scaleToZero.enabled` runs alone (the session's is stopped).
The activator stands in as a selector-less Service with a hand-made slice, as
its real pods would give it. The Deployment is scaled through its `scale`
subresource, as the activator (wake) and the idle scale-down do; kwok makes
the pod Ready, Kubernetes' EndpointSlice controller lists it for the pods
Service, and the operator moves the routing between the pod and the activator
without ever applying the replica count back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubeserve.planning.scale_to_zero import SLICE_MANAGER
from tests.cluster.isvc import Isvcs, example
from tests.operator_run import running_operator
from tests.polling import eventually

pytestmark = pytest.mark.usefixtures("session_operator_stopped")

ACTIVATOR, ACTIVATOR_ADDRESS, ACTIVATOR_PORT = "kubeserve-activator", "10.240.7.7", 8012
NAME = "sklearn-iris"
COMPONENT = f"{NAME}-predictor"


def _stand_in_activator(core: k8s.CoreV1Api, discovery: k8s.DiscoveryV1Api, namespace: str) -> None:
    ports = [{"name": "http", "port": ACTIVATOR_PORT, "targetPort": ACTIVATOR_PORT}]
    core.create_namespaced_service(namespace, {"metadata": {"name": ACTIVATOR}, "spec": {"ports": ports}})
    discovery.create_namespaced_endpoint_slice(
        namespace,
        {
            "metadata": {
                "name": f"{ACTIVATOR}-1",
                "labels": {
                    "kubernetes.io/service-name": ACTIVATOR,
                    "endpointslice.kubernetes.io/managed-by": "tests",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ACTIVATOR_ADDRESS], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": ACTIVATOR_PORT, "protocol": "TCP"}],
        },
    )


def _routing(discovery: k8s.DiscoveryV1Api, namespace: str) -> tuple[list[str], list[tuple[str, int]]]:
    """(addresses, (port name, port)) of the routing slice; empty while it is not there."""
    found = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={COMPONENT}"
    ).items
    if not found:
        return [], []
    (piece,) = found
    assert piece.metadata.name == f"{COMPONENT}-routing"
    assert piece.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "serving.kubeserve.io"
    addresses = sorted(a for e in piece.endpoints or [] for a in e.addresses)
    return addresses, [(p.name, p.port) for p in piece.ports or []]


def _scale(apps: k8s.AppsV1Api, namespace: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(COMPONENT, namespace, {"spec": {"replicas": replicas}})


def _ready_pod_ips(core: k8s.CoreV1Api, namespace: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace, label_selector="component=predictor").items
    return sorted(
        p.status.pod_ip
        for p in pods
        if p.status.pod_ip
        and p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    )


def test_the_service_routes_to_the_activator_at_zero_and_to_the_pod_once_it_is_ready(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    core, apps, discovery = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube), k8s.DiscoveryV1Api(kube)
    _stand_in_activator(core, discovery, namespace)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"scaleToZero": {"enabled": True}}))
    args = ("--namespace", namespace, "--operator-namespace", namespace, "--config", str(config), "--debug")
    with running_operator(kubeconfig, tmp_path / "operator.log", *args) as process:
        isvcs = Isvcs(kube, namespace)
        body: dict[str, Any] = example("sklearn-iris.yaml")
        body["spec"]["predictor"]["minReplicas"] = 0
        isvcs.apply(body)

        # Created, the Deployment starts at the API server's default of one replica, and serves directly.
        pod_ips = eventually(lambda: _ready_pod_ips(core, namespace), 30, "the first pod Ready")
        eventually(lambda: _routing(discovery, namespace)[0] == pod_ips, 30, "routing to the pod")
        assert _routing(discovery, namespace)[1] == [("http", 8080), ("h2c", 8081)], "the container ports"
        public = core.read_namespaced_service(COMPONENT, namespace)
        assert public.spec.selector is None
        assert public.metadata.labels["serving.kubeserve.io/scale-to-zero"] == "true"
        assert public.metadata.annotations["serving.kubeserve.io/deployment"] == COMPONENT
        assert public.metadata.annotations["serving.kubeserve.io/pods-service"] == f"{COMPONENT}-pods"
        assert core.read_namespaced_service(f"{COMPONENT}-pods", namespace).spec.cluster_ip == "None"
        isvcs.wait_condition(NAME, "Ready", reason="Ready")

        # Idle: at zero, requests go to the activator, and the service is Ready, scaled to zero.
        _scale(apps, namespace, 0)
        eventually(lambda: _routing(discovery, namespace)[0] == [ACTIVATOR_ADDRESS], 30, "routing to it")
        assert _routing(discovery, namespace)[1] == [("http", ACTIVATOR_PORT), ("h2c", ACTIVATOR_PORT)]
        ready = isvcs.wait_condition(NAME, "Ready", reason="ScaledToZero")
        assert "scaled to zero" in ready["message"] and "first request wakes it" in ready["message"]

        # Woken, as the activator does: the routing follows the new pod's readiness.
        _scale(apps, namespace, 1)
        woken = eventually(lambda: _ready_pod_ips(core, namespace), 30, "the woken pod Ready")
        eventually(lambda: _routing(discovery, namespace)[0] == woken, 30, "routing to the woken pod")
        isvcs.wait_condition(NAME, "Ready", reason="Ready")

        # A reconcile (a label on the service marks it) leaves the replica count to whoever set it, and
        # finds nothing to write.
        log = tmp_path / "operator.log"
        applied, reconciled = (log.read_text().count(line) for line in (": applied [", ": reconciled"))
        isvcs.apply({**body, "metadata": {**body["metadata"], "labels": {"poke": "1"}}})
        eventually(lambda: log.read_text().count(": reconciled") > reconciled, 20, "a reconcile")
        time.sleep(2)
        assert apps.read_namespaced_deployment_scale(COMPONENT, namespace).spec.replicas == 1
        assert _routing(discovery, namespace)[0] == woken
        assert log.read_text().count(": applied [") == applied, "a reconcile of a steady service wrote"
        assert process.poll() is None, "the operator exited"


def test_turned_on_for_a_running_service_it_leaves_nothing_routing_beside_it(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    """A Service losing its selector keeps its controllers' slices and Endpoints (mirrored into a slice):
    they would route to the pods as they were, beside the routing slice."""
    core, discovery = k8s.CoreV1Api(kube), k8s.DiscoveryV1Api(kube)
    _stand_in_activator(core, discovery, namespace)
    isvcs = Isvcs(kube, namespace)
    body: dict[str, Any] = example("sklearn-iris.yaml")
    body["spec"]["predictor"]["minReplicas"] = 0
    args = ("--namespace", namespace, "--operator-namespace", namespace, "--config")
    off, on = tmp_path / "off.yaml", tmp_path / "on.yaml"
    off.write_text("{}")
    on.write_text(yaml.safe_dump({"scaleToZero": {"enabled": True}}))
    with running_operator(kubeconfig, tmp_path / "operator.log", *args, str(off)):
        isvcs.apply(body)
        isvcs.wait_ready(NAME)
        eventually(
            lambda: (
                core.list_namespaced_endpoints(namespace, field_selector=f"metadata.name={COMPONENT}").items
            ),
            20,
            "Endpoints",
        )
    with running_operator(kubeconfig, tmp_path / "operator.log", *args, str(on)):
        pod_ips = eventually(lambda: _ready_pod_ips(core, namespace), 30, "the pod Ready")

        seen: list[tuple[str, str]] = []

        def only_the_routing_slice() -> bool:
            found = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={COMPONENT}"
            ).items
            seen[:] = [(s.metadata.name, (s.metadata.labels or {}).get(SLICE_MANAGER, "")) for s in found]
            return [name for name, _ in seen] == [f"{COMPONENT}-routing"]

        # Kubernetes' controllers may make a slice again from a stale cache after the operator deleted it;
        # each comes back as an event, and is deleted again. 60 s covers a loaded CI machine.
        try:
            eventually(only_the_routing_slice, 60, "the routing slice alone")
        except AssertionError as error:
            raise AssertionError(f"{error}; slices (name, manager): {seen}") from None
        assert _routing(discovery, namespace)[0] == pod_ips
        assert not core.list_namespaced_endpoints(
            namespace, field_selector=f"metadata.name={COMPONENT}"
        ).items


def test_turned_on_and_off_by_the_config_map_with_no_restart(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    """The operator follows the activator from where its live configuration says, from the moment it says
    so: `helm upgrade` (which rewrites the ConfigMap) is enough to turn scale to zero on or off."""
    core, apps, discovery = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube), k8s.DiscoveryV1Api(kube)
    _stand_in_activator(core, discovery, namespace)
    config_map = "kubeserve-config"

    def configure(settings: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": config_map}, "data": {"config.yaml": yaml.safe_dump(settings)}}

    core.create_namespaced_config_map(namespace, configure({}))
    args = ("--namespace", namespace, "--operator-namespace", namespace, "--config-map", config_map)
    with running_operator(kubeconfig, tmp_path / "operator.log", *args) as process:
        isvcs = Isvcs(kube, namespace)
        body: dict[str, Any] = example("sklearn-iris.yaml")
        body["spec"]["predictor"]["minReplicas"] = 0
        isvcs.apply(body)
        isvcs.wait_ready(NAME)
        assert core.read_namespaced_service(COMPONENT, namespace).spec.selector, "off: a Service as usual"

        core.patch_namespaced_config_map(config_map, namespace, configure({"scaleToZero": {"enabled": True}}))

        def managers() -> list[str]:
            found = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={COMPONENT}"
            ).items
            return [(s.metadata.labels or {}).get(SLICE_MANAGER, "") for s in found]

        # Kubernetes' slice of the Service as it was goes (deleted by the operator, perhaps made again
        # once from a stale cache and deleted again), and the routing slice alone is left.
        eventually(lambda: managers() == ["serving.kubeserve.io"], 60, "the routing slice alone")
        pod_ips = eventually(lambda: _ready_pod_ips(core, namespace), 30, "the pod Ready")
        eventually(lambda: _routing(discovery, namespace)[0] == pod_ips, 30, "routing to the pod")
        _scale(apps, namespace, 0)
        eventually(lambda: _routing(discovery, namespace)[0] == [ACTIVATOR_ADDRESS], 30, "to the activator")
        isvcs.wait_condition(NAME, "Ready", reason="ScaledToZero")

        core.patch_namespaced_config_map(config_map, namespace, configure({}))
        eventually(
            lambda: core.read_namespaced_service(COMPONENT, namespace).spec.selector, 30, "the selector back"
        )
        eventually(lambda: managers() == ["endpointslice-controller.k8s.io"], 30, "Kubernetes' slice alone")
        assert process.poll() is None, "the operator exited"
