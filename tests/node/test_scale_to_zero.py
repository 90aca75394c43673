"""Scale to zero on the real node, as a user turns it on: the chart's activator (its image built here)
and `config.scaleToZero.enabled`, an iris InferenceService with minReplicas 0 taken to zero, and
requests through its ClusterIP while no pod runs: held, one wake for all, every answer right (a gRPC call
too). A service
whose pod never turns Ready answers 503 with Retry-After at the activator's deadline. An idle service
goes back to zero within its window plus 30 s.

The module turns scale to zero on with `helm upgrade` and off again after, so the suite's other modules
run with the chart's defaults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from kubernetes import client as k8s

from kubeserve.devcluster.cluster import ClusterState
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.cluster.isvc import Isvcs
from tests.node.cold_start import (
    activator_ip,
    burst,
    disable_scale_to_zero,
    enable_scale_to_zero,
    scale_to_zero,
    wait_routed_to,
    wakes,
)
from tests.node.workloads import Models, served
from tests.polling import eventually
from tests.server.conftest import GrpcClient
from tests.server.test_grpc_v2 import infer_request

HOLD_SECONDS = 25
"""The activator's deadline here (`activator.holdSeconds`): a cold start on this node takes seconds."""
WINDOW_SECONDS = 20
"""The iris service's idle window (its `serving.kubeserve.io/scale-to-zero-window` annotation)."""
CONCURRENT = 20
GRPC_PORT = 8081
"""The Service's port for the runtime's `h2c` container port (the Service keeps its number)."""
IRIS, BROKEN = "iris", "broken"


@pytest.fixture(scope="module")
def activator(real_cluster: ClusterState, installed_operator: str, node_kube: k8s.ApiClient) -> Iterator[str]:
    """Scale to zero on, with the chart's activator; the activator pod's address. Off again after."""
    hold = f"activator.holdSeconds={HOLD_SECONDS}"
    enable_scale_to_zero(real_cluster.kubeconfig, installed_operator, hold)
    try:
        yield activator_ip(node_kube, installed_operator)
    finally:
        disable_scale_to_zero(real_cluster.kubeconfig, installed_operator)


def scaled(name: str, uri: str) -> dict[str, Any]:
    body = served(name, "sklearn", uri, minReplicas=0, maxReplicas=1)
    body["metadata"]["annotations"] = {"serving.kubeserve.io/scale-to-zero-window": str(WINDOW_SECONDS)}
    return body


@pytest.fixture(scope="module")
def isvcs(activator: str, node_kube: k8s.ApiClient, node_namespace_module: str, models: Models) -> Isvcs:
    """iris (Ready once, from the store) and broken (its model is not in the store: never Ready)."""
    isvcs = Isvcs(node_kube, node_namespace_module)
    isvcs.apply(scaled(IRIS, "s3://models/sklearn/iris"))
    isvcs.apply(scaled(BROKEN, "s3://models/sklearn/absent"))
    isvcs.wait_ready(IRIS, timeout=180)
    return isvcs


def at_zero(kube: k8s.ApiClient, isvcs: Isvcs, name: str, activator: str) -> str:
    """The service at zero replicas, said in its status, and its ClusterIP routed to the activator."""
    scale_to_zero(kube, isvcs.namespace, f"{name}-predictor")
    try:
        isvcs.wait_condition(name, "Ready", "True", reason="ScaledToZero", timeout=60)
    except AssertionError as error:
        raise AssertionError(f"{error}; Ready is {isvcs.condition(name, 'Ready')}") from None
    service = k8s.CoreV1Api(kube).read_namespaced_service(f"{name}-predictor", isvcs.namespace)
    wait_routed_to(isvcs.namespace, f"{name}-predictor", activator)
    return str(service.spec.cluster_ip)


def ready_replicas(kube: k8s.ApiClient, namespace: str, name: str) -> tuple[int, int]:
    deployment = k8s.AppsV1Api(kube).read_namespaced_deployment(f"{name}-predictor", namespace)
    return deployment.spec.replicas, deployment.status.ready_replicas or 0


def kubelet_agrees(kube: k8s.ApiClient, namespace: str) -> None:
    """The one woken replica turns Ready by the kubelet too: the activator forwards as soon as the pod's
    own readiness check says so, which may be before the kubelet's next probe."""
    eventually(lambda: ready_replicas(kube, namespace, IRIS) == (1, 1), 15, f"{IRIS}'s one replica Ready")


def test_a_service_at_zero_is_ready_and_says_it_is_scaled_to_zero(
    node_kube: k8s.ApiClient, isvcs: Isvcs, activator: str
) -> None:
    at_zero(node_kube, isvcs, IRIS, activator)
    ready = isvcs.condition(IRIS, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "ScaledToZero")
    assert "scaled to zero" in ready["message"]
    assert ready_replicas(node_kube, isvcs.namespace, IRIS) == (0, 0)


def test_concurrent_cold_requests_share_one_wake_and_all_get_the_right_answer(
    node_kube: k8s.ApiClient, isvcs: Isvcs, activator: str, models: Models
) -> None:
    address = at_zero(node_kube, isvcs, IRIS, activator)
    service = f"{IRIS}-predictor"
    before = wakes(activator, isvcs.namespace, service)
    answers = burst(f"http://{address}/v1/models/{IRIS}:predict", {"instances": models.inputs}, CONCURRENT)
    assert [a.status for a in answers] == [200] * CONCURRENT, [a.body for a in answers if a.status != 200]
    assert all(a.body["predictions"] == models.sklearn_expected for a in answers)
    assert wakes(activator, isvcs.namespace, service) - before == 1
    kubelet_agrees(node_kube, isvcs.namespace)
    pods = k8s.CoreV1Api(node_kube).list_namespaced_pod(
        isvcs.namespace, label_selector=f"serving.kubeserve.io/inferenceservice={IRIS}"
    )
    assert len(pods.items) == 1, [pod.metadata.name for pod in pods.items]
    print(
        f"{CONCURRENT} cold requests: first answer {min(a.seconds for a in answers):.2f} s, last "
        f"{max(a.seconds for a in answers):.2f} s"
    )


def test_a_cold_grpc_call_through_the_cluster_ip_is_held_and_answered(
    node_kube: k8s.ApiClient, isvcs: Isvcs, activator: str, models: Models
) -> None:
    """The Service's gRPC port goes to the activator's while at zero; its channel names the ClusterIP."""
    address = at_zero(node_kube, isvcs, IRIS, activator)
    started = time.monotonic()
    with grpc.insecure_channel(f"{address}:{GRPC_PORT}") as channel:
        response = GrpcClient(channel).call(
            "ModelInfer", infer_request(np.array(models.inputs)), pb.ModelInferResponse, timeout=HOLD_SECONDS
        )
    assert list(response.outputs[0].contents.int64_contents) == models.sklearn_expected
    kubelet_agrees(node_kube, isvcs.namespace)
    print(f"cold gRPC call answered in {time.monotonic() - started:.2f} s")


def test_a_held_request_gets_503_with_retry_after_at_the_deadline(
    node_kube: k8s.ApiClient, isvcs: Isvcs, activator: str, models: Models
) -> None:
    """broken's pod never turns Ready (its model is not in the store): past the deadline, a clear 503."""
    address = at_zero(node_kube, isvcs, BROKEN, activator)
    [answer] = burst(f"http://{address}/v1/models/{BROKEN}:predict", {"instances": models.inputs}, 1)
    assert answer.status == 503, answer.body
    assert int(answer.headers["retry-after"]) > 0
    assert HOLD_SECONDS - 1 <= answer.seconds <= HOLD_SECONDS + 10, answer.seconds
    assert answer.body["service"] == f"{isvcs.namespace}/{BROKEN}-predictor"


def test_an_idle_service_goes_back_to_zero_within_its_window_and_30_seconds(
    node_kube: k8s.ApiClient, isvcs: Isvcs, activator: str, models: Models
) -> None:
    address = at_zero(node_kube, isvcs, IRIS, activator)
    [answer] = burst(f"http://{address}/v1/models/{IRIS}:predict", {"instances": models.inputs}, 1)
    assert answer.status == 200, answer.body
    last_request = time.monotonic()
    eventually(
        lambda: ready_replicas(node_kube, isvcs.namespace, IRIS) == (0, 0),
        WINDOW_SECONDS + 30,
        f"{IRIS} scaled to zero by the activator after {WINDOW_SECONDS} s idle",
        interval=0.5,
    )
    idle = time.monotonic() - last_request
    assert idle >= WINDOW_SECONDS, f"scaled down {idle:.1f} s after its last request, before its window"
    isvcs.wait_condition(IRIS, "Ready", "True", reason="ScaledToZero", timeout=30)
