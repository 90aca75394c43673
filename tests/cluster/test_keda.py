"""The `keda` autoscaler class on the real control plane: without KEDA, with KEDA's CRDs only, and with
KEDA itself.

Without the CRDs, a service of the keda class gets Ready=False with the reason
KedaNotInstalled. With them (KEDA's own CRDs, copied from KEDA's Go module at
the pinned version by `kubeserve dev build`, so the API server validates the
ScaledObject by KEDA's schema), the operator, told by its CRD watch, creates
the ScaledObject and owns it. With KEDA's operator running too (built from the
same module, run as a host process by `keda_run`), KEDA reconciles that
ScaledObject: its HPA carries the bounds Kubeserve asked for, and KEDA's own
verdict (Ready, or the reason it refuses a trigger) becomes the service's
AutoscalerReady condition.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubeserve.devcluster import build
from tests.cluster.isvc import Isvcs
from tests.cluster.keda_run import OBJECT_NAMESPACE, Keda
from tests.polling import eventually

NAME = "keda-iris"
SCALED_OBJECT = f"{NAME}-predictor"
KEDA_CLASS = {"serving.kserve.io/autoscalerClass": "keda"}
EXTERNAL_METRICS_API_SERVICE = "v1beta1.external.metrics.k8s.io"
UNANSWERED = "http://127.0.0.1:1"
"""A backend address that refuses at once: KEDA polls it, and no name is looked up off the machine."""
PROMETHEUS = {
    "type": "External",
    "external": {
        "metric": {"backend": "prometheus", "serverAddress": UNANSWERED, "query": "sum(up)"},
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


def _crd_names() -> list[str]:
    documents = yaml.safe_load_all(build.keda_crds_file().read_text())
    return [d["metadata"]["name"] for d in documents if d]


def _crds_established(kube: k8s.ApiClient) -> bool:
    wanted = set(_crd_names())
    crds = k8s.ApiextensionsV1Api(kube).list_custom_resource_definition().items
    return wanted <= {
        c.metadata.name
        for c in crds
        if any(cond.type == "Established" and cond.status == "True" for cond in c.status.conditions or [])
    }


def _crds_gone(kube: k8s.ApiClient) -> bool:
    crds = k8s.ApiextensionsV1Api(kube).list_custom_resource_definition().items
    return not set(_crd_names()) & {c.metadata.name for c in crds}


@pytest.fixture
def keda_crds(kubeconfig: str, kube: k8s.ApiClient) -> Iterator[None]:
    """KEDA's CRDs (all of them: its operator watches each) for one test; removed (and gone) afterwards."""
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    crds = str(build.keda_crds_file())
    subprocess.run([*kubectl, "apply", "--server-side", "-f", crds], check=True, capture_output=True)
    eventually(lambda: _crds_established(kube), 60, "KEDA's CRDs Established")
    yield
    subprocess.run([*kubectl, "delete", "--wait=false", "-f", crds], check=True, capture_output=True)
    eventually(lambda: _crds_gone(kube), 60, "KEDA's CRDs deleted")


def _scaled_objects_left(kube: k8s.ApiClient) -> list[str]:
    found = k8s.CustomObjectsApi(kube).list_cluster_custom_object("keda.sh", "v1alpha1", "scaledobjects")
    return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in found["items"]]


@pytest.fixture
def keda(keda_crds: None, kubeconfig: str, kube: k8s.ApiClient, tmp_path: Path) -> Iterator[Keda]:
    """KEDA's operator, reconciling every namespace, for one test; stopped by its PID afterwards.

    KEDA puts a finalizer on each ScaledObject, which only KEDA removes: a test lists this fixture before
    `namespace`, so that its namespace is deleted first, while KEDA still runs to let its ScaledObjects
    (and then its CRDs) go."""
    keda = Keda(kubeconfig, tmp_path)
    try:
        keda.start_operator()
        yield keda
        eventually(lambda: not _scaled_objects_left(kube), 60, "KEDA to finalize the ScaledObjects left")
    finally:
        keda.stop()


def _adapter_objects(port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Service and APIService through which the aggregation layer reaches the adapter on loopback.
    An ExternalName Service is the one kind the aggregator dials by name instead of a cluster IP. TLS is
    not verified: the aggregator checks the name `<service>.<namespace>.svc`, for which the dev PKI
    issues no certificate."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "keda-metrics-apiserver", "namespace": OBJECT_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"port": port}]},
    }
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": EXTERNAL_METRICS_API_SERVICE},
        "spec": {
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "service": {"namespace": OBJECT_NAMESPACE, "name": "keda-metrics-apiserver", "port": port},
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    return service, api_service


def _api_service_available(kube: k8s.ApiClient) -> dict[str, Any] | None:
    found = k8s.ApiregistrationV1Api(kube).read_api_service(EXTERNAL_METRICS_API_SERVICE)
    available = [c for c in found.status.conditions or [] if c.type == "Available"]
    return available[0].to_dict() if available and available[0].status == "True" else None


@pytest.fixture
def keda_with_adapter(keda: Keda, kube: k8s.ApiClient) -> Iterator[Keda]:
    """KEDA's operator and its metrics adapter, registered as external.metrics.k8s.io for one test."""
    keda.start_adapter()
    service, api_service = _adapter_objects(keda.adapter_port)
    core = k8s.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": OBJECT_NAMESPACE}})
    core.create_namespaced_service(OBJECT_NAMESPACE, service)
    registration = k8s.ApiregistrationV1Api(kube)
    registration.create_api_service(api_service)
    try:
        eventually(lambda: _api_service_available(kube), 60, f"{EXTERNAL_METRICS_API_SERVICE} Available")
        yield keda
    finally:
        registration.delete_api_service(EXTERNAL_METRICS_API_SERVICE)
        core.delete_namespace(OBJECT_NAMESPACE)


class Prometheus(ThreadingHTTPServer):
    """Prometheus's instant-query API on loopback, as KEDA's prometheus scaler reads it: every query
    answers `value`, and the queries asked are kept."""

    value = 0.0
    queries: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _QueryHandler(BaseHTTPRequestHandler):
    server: Prometheus

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.queries += parse_qs(url.query).get("query", [])
        sample = {"metric": {}, "value": [time.time(), str(self.server.value)]}
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [sample]}})
        self.send_response(200 if url.path == "/api/v1/query" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: KEDA polls every second."""


@pytest.fixture
def prometheus() -> Iterator[Prometheus]:
    server = Prometheus(("127.0.0.1", 0), _QueryHandler)
    server.queries = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _scaled_object(kube: k8s.ApiClient, namespace: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = k8s.CustomObjectsApi(kube).get_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", SCALED_OBJECT
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def _kedas_verdict(kube: k8s.ApiClient, namespace: str) -> dict[str, Any] | None:
    """The Ready condition KEDA wrote on the ScaledObject, once it has written one."""
    scaled = _scaled_object(kube, namespace) or {}
    conditions = scaled.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready" and c["status"] in ("True", "False")), None)


def _hpa_names(kube: k8s.ApiClient, namespace: str) -> set[str]:
    hpas = k8s.AutoscalingV2Api(kube).list_namespaced_horizontal_pod_autoscaler(namespace).items
    return {h.metadata.name for h in hpas}


def _warnings_on_the_service(kube: k8s.ApiClient, namespace: str, reason: str) -> list[k8s.CoreV1Event]:
    """The operator's Warning Events on the InferenceService (KEDA's own go on the ScaledObject)."""
    return [
        e
        for e in k8s.CoreV1Api(kube).list_namespaced_event(namespace).items
        if e.reason == reason and e.type == "Warning" and e.involved_object.kind == "InferenceService"
    ]


def test_without_kedas_crd_the_keda_class_says_keda_is_not_installed(
    kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    ready = isvcs.wait_condition(NAME, "Ready", status="False", reason="KedaNotInstalled")
    assert "KEDA is not installed" in ready["message"], ready
    predictor = isvcs.condition(NAME, "PredictorReady")
    assert predictor is not None and predictor["reason"] == "KedaNotInstalled", predictor


@pytest.mark.cluster_wide("creates and deletes KEDA's CRDs, runs KEDA's operator for every namespace")
def test_keda_reconciles_the_scaled_object_into_its_hpa_and_the_service_says_so(
    keda: Keda, kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    service = isvcs.wait_ready(NAME)
    scaled = eventually(lambda: _scaled_object(kube, namespace), 30, "the ScaledObject")
    assert [o["uid"] for o in scaled["metadata"]["ownerReferences"]] == [service["metadata"]["uid"]]
    spec = scaled["spec"]  # as stored: what KEDA's schema kept of what the operator applied
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SCALED_OBJECT}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (1, 4, 10)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "static"}
    assert spec["triggers"] == [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
        {
            "type": "prometheus",
            "metadata": {"serverAddress": UNANSWERED, "query": "sum(up)", "threshold": "2"},
        },
    ]

    autoscaler = isvcs.wait_condition(NAME, "AutoscalerReady", reason="ScaledObjectReady")
    verdict = _kedas_verdict(kube, namespace)
    assert verdict is not None and verdict["status"] == "True", f"KEDA wrote no Ready=True: {verdict}"
    assert autoscaler["message"] == "", autoscaler
    hpa = k8s.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler(
        f"keda-hpa-{SCALED_OBJECT}", namespace
    )
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4), hpa.spec
    assert hpa.spec.scale_target_ref.name == SCALED_OBJECT
    assert [o.kind for o in hpa.metadata.owner_references] == ["ScaledObject"], "KEDA's, not Kubeserve's"
    assert sorted(m.type for m in hpa.spec.metrics) == ["External", "Resource"], hpa.spec.metrics
    assert _hpa_names(kube, namespace) == {f"keda-hpa-{SCALED_OBJECT}"}, "Kubeserve makes no HPA of its own"
    deployment = k8s.AppsV1Api(kube).read_namespaced_deployment(SCALED_OBJECT, namespace)
    assert deployment.spec.replicas == 1, "KEDA's HPA holds it at the minimum the operator asked for"

    isvcs.apply(
        _service({})
    )  # the hpa class: the ScaledObject goes, KEDA's HPA with it, and Kubeserve's comes
    eventually(lambda: _scaled_object(kube, namespace) is None, 30, "the ScaledObject pruned")
    eventually(lambda: _hpa_names(kube, namespace) == {SCALED_OBJECT}, 60, "only Kubeserve's HPA")
    hpa = k8s.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler(SCALED_OBJECT, namespace)
    assert [m.resource.name for m in hpa.spec.metrics] == ["cpu"]
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


@pytest.mark.cluster_wide("creates and deletes KEDA's CRDs")
def test_with_kedas_crds_but_no_keda_running_the_autoscaler_is_pending_and_the_service_serves(
    keda_crds: None, kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(KEDA_CLASS))
    isvcs.wait_ready(NAME)
    pending = isvcs.wait_condition(NAME, "AutoscalerReady", status="Unknown", reason="KedaPending")
    assert SCALED_OBJECT in pending["message"], pending
    eventually(lambda: _scaled_object(kube, namespace), 30, "the ScaledObject")
    deployment = k8s.AppsV1Api(kube).read_namespaced_deployment(SCALED_OBJECT, namespace)
    assert deployment.spec.replicas == 1, "created at the API server's default, then KEDA's to set"
    assert not _hpa_names(kube, namespace)


@pytest.mark.cluster_wide("creates and deletes KEDA's CRDs, runs KEDA's operator for every namespace")
def test_a_trigger_keda_refuses_reaches_the_services_conditions(
    keda: Keda, kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    """The schema takes any trigger names (KServe's does too); KEDA refuses two triggers of one name."""
    body = _service(KEDA_CLASS)
    for metric in body["spec"]["predictor"]["autoScaling"]["metrics"]:
        metric["name"] = "load"
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(body)
    isvcs.wait_ready(NAME)
    verdict = eventually(lambda: _kedas_verdict(kube, namespace), 60, "KEDA's verdict on the ScaledObject")
    assert verdict["status"] == "False", f"KEDA took two triggers of one name: {verdict}"
    assert '"load" is defined multiple times' in verdict["message"], verdict
    condition = isvcs.wait_condition(NAME, "AutoscalerReady", status="False", reason=verdict["reason"])
    assert condition["message"] == f"KEDA refuses ScaledObject {SCALED_OBJECT}: {verdict['message']}", (
        condition
    )
    ready = isvcs.condition(NAME, "Ready")
    assert ready is not None and ready["status"] == "True", "the pods serve at their minimum meanwhile"
    events = eventually(
        lambda: _warnings_on_the_service(kube, namespace, verdict["reason"]),
        30,
        "a Warning Event on the service",
    )
    assert verdict["message"] in events[0].message


@pytest.mark.cluster_wide(
    "creates and deletes KEDA's CRDs, runs KEDA for every namespace, registers external.metrics.k8s.io"
)
def test_kedas_metrics_adapter_feeds_the_query_to_the_hpa_which_scales_the_deployment(
    keda_with_adapter: Keda,
    prometheus: Prometheus,
    kubeconfig: str,
    kube: k8s.ApiClient,
    namespace: str,
    operator: Path,
) -> None:
    query = "sum(rate(kubeserve_requests_total[1m]))"
    body = _service(KEDA_CLASS)
    external = copy.deepcopy(PROMETHEUS)
    external["external"]["metric"] |= {"serverAddress": prometheus.url, "query": query}
    body["spec"]["predictor"]["autoScaling"] = {"metrics": [external], "keda": {"pollingInterval": 1}}
    prometheus.value = 7.0  # 2 per replica: 4 replicas, the maximum
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(body)
    isvcs.wait_ready(NAME)
    isvcs.wait_condition(NAME, "AutoscalerReady", reason="ScaledObjectReady")

    hpa = k8s.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler(
        f"keda-hpa-{SCALED_OBJECT}", namespace
    )
    metric = hpa.spec.metrics[0].external.metric.name
    path = (
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"
        f"?labelSelector=scaledobject.keda.sh/name%3D{SCALED_OBJECT}"
    )
    raw = ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", path]
    served = json.loads(subprocess.run(raw, check=True, capture_output=True, text=True).stdout)
    assert [item["value"] for item in served["items"]] == ["7"], served
    assert query in prometheus.queries, "KEDA asked the backend the service names"

    def scaled() -> int | None:
        replicas = k8s.AppsV1Api(kube).read_namespaced_deployment(SCALED_OBJECT, namespace).spec.replicas
        return replicas if replicas == 4 else None

    eventually(scaled, 90, "the HPA (fed by KEDA's adapter) to scale the Deployment to 4")
