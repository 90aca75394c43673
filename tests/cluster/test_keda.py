"""The `keda` autoscaler class on the real control plane, with and without KEDA's real ScaledObject CRD.

Without the CRD, a service of the keda class gets Ready=False with the reason
KedaNotInstalled. With it (KEDA's own CRD, vendored in tests/cluster/keda/ from
KEDA's Go module, so the API server validates the ScaledObject by KEDA's
schema), the operator, told by its CRD watch, creates the ScaledObject, owns
it and prunes it when the class changes. KEDA itself does not run here: the
Deployment keeps the count it was created with, and the service is Ready.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.cluster.isvc import Isvcs
from tests.polling import eventually

NAME = "keda-iris"
CRD_FILE = Path(__file__).resolve().parent / "keda" / "keda.sh_scaledobjects.yaml"
CRD_NAME = "scaledobjects.keda.sh"
KEDA_CLASS = {"serving.kserve.io/autoscalerClass": "keda"}
PROMETHEUS = {
    "type": "External",
    "external": {
        "metric": {"backend": "prometheus", "serverAddress": "http://prometheus:9090", "query": "sum(up)"},
        "target": {"type": "Value", "value": "2"},
    },
}
CPU = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}


def _service(annotations: dict[str, str]) -> dict[str, Any]:
    """A fresh body each time: a test may change it (the metrics are module constants)."""
    return copy.deepcopy(
        {
            "apiVersion": "serving.kubeserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": NAME, "annotations": annotations},
            "spec": {
                "predictor": {
                    "minReplicas": 1,
                    "maxReplicas": 4,
                    "autoScaling": {
                        "metrics": [CPU, PROMETHEUS],
                        "keda": {"pollingInterval": 10, "fallback": {"failureThreshold": 3, "replicas": 2}},
                    },
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model",
                    },
                }
            },
        }
    )


def _crd_established(kube: k8s.ApiClient) -> bool:
    try:
        crd = k8s.ApiextensionsV1Api(kube).read_custom_resource_definition(CRD_NAME)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def _crd_gone(kube: k8s.ApiClient) -> bool:
    try:
        k8s.ApiextensionsV1Api(kube).read_custom_resource_definition(CRD_NAME)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


@pytest.fixture
def keda_crd(kubeconfig: str, kube: k8s.ApiClient) -> Iterator[None]:
    """KEDA's ScaledObject CRD for one test; removed (and gone) afterwards."""
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(CRD_FILE)], check=True, capture_output=True)
    eventually(lambda: _crd_established(kube), 60, f"{CRD_NAME} Established")
    yield
    subprocess.run([*kubectl, "delete", "--wait=false", "-f", str(CRD_FILE)], check=True, capture_output=True)
    eventually(lambda: _crd_gone(kube), 60, f"{CRD_NAME} deleted")


def _scaled_object(kube: k8s.ApiClient, namespace: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = k8s.CustomObjectsApi(kube).get_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", f"{NAME}-predictor"
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def test_without_kedas_crd_the_keda_class_says_keda_is_not_installed(
    kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    ready = isvcs.wait_condition(NAME, "Ready", status="False", reason="KedaNotInstalled")
    assert "KEDA is not installed" in ready["message"], ready
    predictor = isvcs.condition(NAME, "PredictorReady")
    assert predictor is not None and predictor["reason"] == "KedaNotInstalled", predictor


@pytest.mark.cluster_wide("creates and deletes KEDA's ScaledObject CRD")
def test_with_kedas_crd_the_scaled_object_is_created_owned_and_pruned(
    keda_crd: None, kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    service = isvcs.wait_ready(NAME)
    scaled = eventually(lambda: _scaled_object(kube, namespace), 30, "the ScaledObject")
    assert [o["uid"] for o in scaled["metadata"]["ownerReferences"]] == [service["metadata"]["uid"]]
    spec = scaled["spec"]  # as stored: what KEDA's schema kept of what the operator applied
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{NAME}-predictor",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (1, 4, 10)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "static"}
    assert spec["triggers"] == [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
        {
            "type": "prometheus",
            "metadata": {"serverAddress": "http://prometheus:9090", "query": "sum(up)", "threshold": "2"},
        },
    ]
    deployment = k8s.AppsV1Api(kube).read_namespaced_deployment(f"{NAME}-predictor", namespace)
    assert deployment.spec.replicas == 1, "created at the API server's default, then KEDA's to set"
    assert not k8s.AutoscalingV2Api(kube).list_namespaced_horizontal_pod_autoscaler(namespace).items

    isvcs.apply(_service({}))  # the hpa class: the ScaledObject goes, an HPA comes
    eventually(lambda: _scaled_object(kube, namespace) is None, 30, "the ScaledObject pruned")
    hpas = eventually(
        lambda: k8s.AutoscalingV2Api(kube).list_namespaced_horizontal_pod_autoscaler(namespace).items,
        30,
        "the HPA",
    )
    assert [m.resource.name for m in hpas[0].spec.metrics] == ["cpu"]
    fields = isvcs.wait_condition(NAME, "FieldsSupported", status="False", reason="UnsupportedField")
    assert "autoScaling.metrics[1] (prometheus query)" in fields["message"], fields


def test_a_threshold_keda_cannot_parse_is_refused_by_the_api_server(
    kube: k8s.ApiClient, namespace: str
) -> None:
    body = _service(KEDA_CLASS)
    body["spec"]["predictor"]["autoScaling"]["metrics"][1]["external"]["target"]["value"] = "500m"
    with pytest.raises(ApiException) as refused:
        Isvcs(kube, namespace).apply(body)
    assert refused.value.status == 422
    assert "autoScaling external target.value must be a plain number" in refused.value.body


@pytest.mark.cluster_wide("creates and deletes KEDA's ScaledObject CRD")
def test_a_trigger_keda_refuses_reaches_the_services_conditions(
    keda_crd: None, kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    """KEDA does not run here, so its verdict is written as KEDA writes it (the ScaledObject's status
    subresource, condition Ready); the operator follows the ScaledObject and says KEDA's reason."""
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    isvcs.wait_ready(NAME)
    pending = isvcs.wait_condition(NAME, "AutoscalerReady", status="Unknown", reason="KedaPending")
    assert f"{NAME}-predictor" in pending["message"], pending
    eventually(lambda: _scaled_object(kube, namespace), 30, "the ScaledObject")
    message = "Triggers defined in ScaledObject are not correct"
    refused = {"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed", "message": message}
    k8s.CustomObjectsApi(kube).patch_namespaced_custom_object_status(
        "keda.sh",
        "v1alpha1",
        namespace,
        "scaledobjects",
        f"{NAME}-predictor",
        {"status": {"conditions": [refused]}},
    )
    condition = isvcs.wait_condition(
        NAME, "AutoscalerReady", status="False", reason="ScaledObjectCheckFailed"
    )
    assert condition["message"] == f"KEDA refuses ScaledObject {NAME}-predictor: {message}", condition
    ready = isvcs.condition(NAME, "Ready")
    assert ready is not None and ready["status"] == "True", "the pods serve at their minimum meanwhile"
    events = eventually(
        lambda: [
            e
            for e in k8s.CoreV1Api(kube).list_namespaced_event(namespace).items
            if e.reason == "ScaledObjectCheckFailed" and e.type == "Warning"
        ],
        30,
        "a Warning Event",
    )
    assert message in events[0].message
