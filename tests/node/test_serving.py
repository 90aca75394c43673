"""Models from S3 served on the real node: every protocol, from the host and from a pod, equals the model."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from kubernetes import client as k8s

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.cluster.isvc import Isvcs
from tests.node.workloads import Models, client_pod_output, routed, served
from tests.server.conftest import GrpcClient

FORMATS = {"sklearn": "s3://models/sklearn/iris", "xgboost": "s3://models/xgboost/iris"}


def expected(models: Models, model_format: str) -> list[Any]:
    return models.sklearn_expected if model_format == "sklearn" else models.xgboost_expected


def close(answer: list[float], wanted: list[Any]) -> bool:
    """The server computes in the model's own dtype; XGBoost's float32 round-trips through JSON."""
    return len(answer) == len(wanted) and all(abs(a - w) < 1e-5 for a, w in zip(answer, wanted, strict=True))


@pytest.fixture(scope="module")
def services(
    node_kube: k8s.ApiClient, installed_operator: str, node_namespace_module: str, models: Models
) -> dict[str, str]:
    """One InferenceService per format, Ready; returns each format's Service ClusterIP."""
    isvcs = Isvcs(node_kube, node_namespace_module)
    for model_format, uri in FORMATS.items():
        isvcs.apply(served(f"iris-{model_format}", model_format, uri))
    core = k8s.CoreV1Api(node_kube)
    addresses = {}
    for model_format in FORMATS:
        name = f"iris-{model_format}"
        isvcs.wait_ready(name, timeout=180)
        service = core.read_namespaced_service(f"{name}-predictor", isvcs.namespace)
        addresses[model_format] = routed(service.spec.cluster_ip)
    return addresses


@pytest.mark.parametrize("model_format", FORMATS)
def test_v1_rest_through_the_cluster_ip(services: dict[str, str], models: Models, model_format: str) -> None:
    response = httpx.post(
        f"http://{services[model_format]}/v1/models/iris-{model_format}:predict",
        json={"instances": models.inputs},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert close(response.json()["predictions"], expected(models, model_format))


@pytest.mark.parametrize("model_format", FORMATS)
def test_v2_rest_through_the_cluster_ip(services: dict[str, str], models: Models, model_format: str) -> None:
    flat = [value for row in models.inputs for value in row]
    body = {
        "inputs": [{"name": "input-0", "shape": [len(models.inputs), 4], "datatype": "FP64", "data": flat}]
    }
    response = httpx.post(
        f"http://{services[model_format]}/v2/models/iris-{model_format}/infer", json=body, timeout=10
    )
    assert response.status_code == 200, response.text
    assert close(response.json()["outputs"][0]["data"], expected(models, model_format))


@pytest.mark.parametrize("model_format", FORMATS)
def test_v2_grpc_through_the_cluster_ip(services: dict[str, str], models: Models, model_format: str) -> None:
    request = pb.ModelInferRequest(model_name=f"iris-{model_format}")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[len(models.inputs), 4])
    tensor.contents.fp64_contents.extend(value for row in models.inputs for value in row)
    with grpc.insecure_channel(f"{services[model_format]}:8081") as channel:
        response = GrpcClient(channel).infer(request)
    [output] = [o for o in response.outputs if o.name == "predict"] or response.outputs[:1]
    contents = output.contents
    answer = list(contents.int64_contents) or list(contents.fp32_contents) or list(contents.fp64_contents)
    assert close(answer, expected(models, model_format))


def test_a_pod_reaches_the_service_by_its_dns_name(
    node_kube: k8s.ApiClient, services: dict[str, str], node_namespace_module: str, models: Models
) -> None:
    """Cluster DNS and the Service from inside the cluster, as another workload calls a model."""
    url = f"http://iris-sklearn-predictor.{node_namespace_module}.svc.cluster.local/v1/models/iris-sklearn:predict"
    output = client_pod_output(node_kube, node_namespace_module, url, {"instances": models.inputs})
    assert json.loads(output)["predictions"] == models.sklearn_expected
