"""containerConcurrency, timeout, logger and batcher on the control plane: the kubeserve-server pods get the
server's flags and the HPA its concurrency target; a runtime that cannot act on them leaves the service
running with an UnsupportedField condition and a Warning Event; workerSpec is read and refused by name;
deploymentStrategy reaches the Deployment with its ints and percentages as written."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from tests.cluster.isvc import (
    GROUP,
    PLURAL,
    VERSION,
    Isvcs,
    example,
    pod_spec,
    serving_runtime,
    stored_deployment,
)
from tests.polling import eventually


def service(name: str, **predictor: Any) -> dict[str, Any]:
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = name
    body["spec"]["predictor"].update(predictor)
    return body


def server_args(kube: k8s.ApiClient, namespace: str, name: str) -> list[str]:
    args: list[str] = pod_spec(kube, namespace, name)["containers"][0]["args"]
    return args


def warning_event(kube: k8s.ApiClient, namespace: str, name: str, reason: str) -> k8s.CoreV1Event:
    core = k8s.CoreV1Api(kube)
    found: list[k8s.CoreV1Event] = eventually(
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.reason == reason and e.type == "Warning"
        ],
        timeout=10,
        what=f"a Warning Event {reason} on {name}",
    )
    return found[0]


def test_settings_reach_kubeserve_server_as_flags_and_the_hpa_as_its_target(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(
        service(
            "tuned",
            containerConcurrency=4,
            timeout=30,
            logger={"url": "http://dumper.logs/", "mode": "response"},
            batcher={"maxBatchSize": 16, "maxLatency": 20},
            maxReplicas=3,
            scaleMetric="concurrency",
        )
    )
    condition = isvcs.wait_condition("tuned", "FieldsSupported", status="True", timeout=20)
    assert condition["reason"] == "Supported"
    assert server_args(kube, namespace, "tuned-predictor")[-6:] == [
        "--container_concurrency=4",
        "--request_timeout=30",
        "--log_payload_url=http://dumper.logs/",
        "--log_payload_mode=response",
        "--max_batch_size=16",
        "--max_batch_latency_ms=20",
    ]
    hpa = k8s.AutoscalingV2Api(kube).read_namespaced_horizontal_pod_autoscaler("tuned-predictor", namespace)
    [metric] = hpa.spec.metrics
    assert (metric.pods.metric.name, metric.pods.target.average_value) == (
        "kubeserve_requests_in_flight",
        "4",
    )
    isvcs.wait_ready("tuned")


def test_a_runtime_that_reads_none_of_them_serves_and_says_which_fields_it_ignores(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    runtime = serving_runtime(
        "plain",
        container={"args": ["--model_name={{ name }}", "{% if protocol == 'v9' %}--never{% endif %}"]},
    )
    k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "servingruntimes", runtime
    )
    isvcs = Isvcs(kube, namespace)
    body = service("plain-logged", timeout=30, logger={"url": "http://dumper.logs/"})
    body["spec"]["predictor"]["model"]["runtime"] = "plain"
    isvcs.apply(body)
    condition = isvcs.wait_condition(
        "plain-logged", "FieldsSupported", status="False", reason="UnsupportedField"
    )
    assert condition["message"] == (
        "spec.predictor.timeout, spec.predictor.logger: not acted on, since ServingRuntime plain does not "
        "read timeout, logger_url, logger_mode in its templates"
    )
    event = warning_event(kube, namespace, "plain-logged", "UnsupportedField")
    assert "spec.predictor.logger" in event.message
    # The service runs without them; the arg that rendered to nothing is not passed at all.
    assert server_args(kube, namespace, "plain-logged-predictor") == ["--model_name=plain-logged"]
    isvcs.wait_ready("plain-logged")
    del body["spec"]["predictor"]["timeout"], body["spec"]["predictor"]["logger"]
    isvcs.apply(body)
    isvcs.wait_condition("plain-logged", "FieldsSupported", status="True")


def test_worker_spec_is_accepted_by_the_schema_and_refused_by_name(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    body = service(
        "multinode", workerSpec={"tensorParallelSize": 2, "pipelineParallelSize": 2, "containers": []}
    )
    body["apiVersion"] = f"{GROUP}/{VERSION}"
    k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )
    isvcs = Isvcs(kube, namespace)
    ready = isvcs.wait_condition("multinode", "Ready", status="False", reason="Unsupported", timeout=20)
    assert "spec.predictor.workerSpec" in ready["message"]
    predictor = isvcs.condition("multinode", "PredictorReady")
    assert predictor is not None and predictor["reason"] == "Unsupported"
    assert "spec.predictor.workerSpec" in warning_event(kube, namespace, "multinode", "Unsupported").message


def test_deployment_strategy_keeps_int_or_percent_and_a_refused_one_is_child_rejected(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}
    isvcs.apply(service("rolling", deploymentStrategy=strategy))
    isvcs.wait_ready("rolling")
    rolling = stored_deployment(kube, namespace, "rolling-predictor")["spec"]["strategy"]["rollingUpdate"]
    assert rolling == {"maxSurge": 1, "maxUnavailable": "25%"}
    assert type(rolling["maxSurge"]) is int

    zero = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "0"}}
    isvcs.apply(service("rolling", deploymentStrategy=zero))
    ready = isvcs.wait_condition("rolling", "Ready", status="False", reason="ChildRejected", timeout=20)
    assert "maxUnavailable" in ready["message"], ready
    assert "maxUnavailable" in warning_event(kube, namespace, "rolling", "ChildRejected").message
