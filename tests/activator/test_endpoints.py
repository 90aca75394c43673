"""The activator's view of EndpointSlices: Ready addresses, pods still starting (which it may probe when
the Service names their readiness probe), and starting pods whose probe vouched for them."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve_activator.cluster import ClusterEndpoints, ClusterTargets, readiness_probe
from kubeserve_activator.interfaces import Probe, Target

IRIS = Target("models", "iris-predictor")
PROBE = "8080:/v2/health/ready"


def service(readiness: str | None = PROBE) -> dict[str, Any]:
    annotations = {
        "serving.kubeserve.io/deployment": "iris-predictor",
        "serving.kubeserve.io/pods-service": "iris-predictor-pods",
    }
    if readiness is not None:
        annotations["serving.kubeserve.io/readiness-probe"] = readiness
    return {
        "metadata": {"namespace": "models", "name": "iris-predictor", "annotations": annotations},
        "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]},
    }


def endpoint_slice(*endpoints: tuple[str, dict[str, bool]]) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "models",
            "name": "iris-predictor-pods-abcde",
            "labels": {"kubernetes.io/service-name": "iris-predictor-pods"},
        },
        "endpoints": [
            {"addresses": [address], "conditions": conditions} for address, conditions in endpoints
        ],
        "ports": [{"name": "http", "port": 8080}],
    }


STARTING = {"ready": False, "serving": False, "terminating": False}
READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}


def view(readiness: str | None = PROBE) -> ClusterEndpoints:
    targets = ClusterTargets()
    endpoints = ClusterEndpoints(targets)
    targets.update("ADDED", service(readiness))
    return endpoints


def test_starting_pods_are_probed_at_the_services_readiness_probe_and_terminating_ones_are_not() -> None:
    endpoints = view()
    endpoints.update(
        "ADDED", endpoint_slice(("10.244.0.5", STARTING), ("10.244.0.6", TERMINATING), ("10.244.0.7", READY))
    )
    assert endpoints.ready(IRIS) == [("10.244.0.7", 8080)]
    assert endpoints.starting(IRIS) == [Probe(("10.244.0.5", 8080), 8080, "/v2/health/ready")]


def test_a_vouched_pod_is_ready_until_the_kubelet_decides() -> None:
    endpoints = view()
    endpoints.update("ADDED", endpoint_slice(("10.244.0.5", STARTING)))
    endpoints.vouch(IRIS, ("10.244.0.5", 8080))
    assert endpoints.ready(IRIS) == [("10.244.0.5", 8080)]
    assert endpoints.starting(IRIS) == [], "asked once it said ready"
    endpoints.update("MODIFIED", endpoint_slice(("10.244.0.5", READY)))
    endpoints.update("MODIFIED", endpoint_slice(("10.244.0.5", STARTING)))  # the kubelet took it back
    assert endpoints.ready(IRIS) == [], "the vouch ended when the kubelet said Ready"
    assert endpoints.starting(IRIS) == [Probe(("10.244.0.5", 8080), 8080, "/v2/health/ready")]


def test_a_vouch_ends_with_the_pod() -> None:
    endpoints = view()
    endpoints.update("ADDED", endpoint_slice(("10.244.0.5", STARTING)))
    endpoints.vouch(IRIS, ("10.244.0.5", 8080))
    endpoints.update("MODIFIED", endpoint_slice())
    endpoints.update("MODIFIED", endpoint_slice(("10.244.0.5", STARTING)))  # the address, reused
    assert endpoints.ready(IRIS) == []


@pytest.mark.parametrize(
    "readiness", [None, "", "http:/ready", "8080", "0:/ready", "70000:/ready", "8080:ready"]
)
def test_without_a_valid_readiness_probe_starting_pods_wait_for_the_kubelet(readiness: str | None) -> None:
    endpoints = view(readiness)
    endpoints.update("ADDED", endpoint_slice(("10.244.0.5", STARTING)))
    assert endpoints.starting(IRIS) == []
    assert readiness_probe(readiness) is None
