"""KServe's runtime names and protocol defaults on the control plane: what a KServe manifest gets here.

Manifests written as KServe's documentation writes them, but for the apiVersion, name KServe's shipped
runtimes; each must run on the shipped runtime that serves the same formats, and say so in its status,
its Event and its Deployment's image. Plain triton
and huggingface manifests name no runtime and no protocol: KServe's defaults must still find theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubeserve.planning.runtime_selection import KSERVE_UNSERVED
from tests.cluster.isvc import GROUP, VERSION, Isvcs
from tests.cluster.test_api_validation import table_row
from tests.polling import eventually

RUNTIMES = Path(__file__).resolve().parents[2] / "manifests" / "runtimes"


def shipped_image(runtime: str) -> str:
    image: str = yaml.safe_load((RUNTIMES / f"{runtime}.yaml").read_text())["spec"]["containers"][0]["image"]
    return image


def manifest(name: str, predictor: dict[str, Any]) -> dict[str, Any]:
    """A predictor-only InferenceService, written as KServe's documentation writes it but for the
    apiVersion, with a storageUri for a model that needs one."""
    [implementation] = predictor.values()
    implementation.setdefault("storageUri", "gs://kfserving-examples/models/example")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": predictor},
    }


def predictor_image(kube: k8s.ApiClient, namespace: str, name: str) -> str:
    deployment = k8s.AppsV1Api(kube).read_namespaced_deployment(f"{name}-predictor", namespace)
    image: str = deployment.spec.template.spec.containers[0].image
    return image


# (service, its model as KServe's docs write it, the Kubeserve runtime it must get)
NAMED = [
    ("sk", {"modelFormat": {"name": "sklearn"}, "runtime": "kserve-sklearnserver"}, "kubeserve-server"),
    ("xgb", {"modelFormat": {"name": "xgboost"}, "runtime": "kserve-xgbserver"}, "kubeserve-server"),
    ("lgb", {"modelFormat": {"name": "lightgbm"}, "runtime": "kserve-lgbserver"}, "kubeserve-server"),
    (
        "mls",
        {"modelFormat": {"name": "sklearn"}, "runtime": "kserve-mlserver", "protocolVersion": "v2"},
        "mlserver",
    ),
    ("trt", {"modelFormat": {"name": "triton"}, "runtime": "kserve-tritonserver"}, "triton"),
    (
        "tfs",
        {"modelFormat": {"name": "tensorflow"}, "runtime": "kserve-tensorflow-serving"},
        "tensorflow-serving",
    ),
    ("pt", {"modelFormat": {"name": "pytorch"}, "runtime": "kserve-torchserve"}, "torchserve"),
    (
        "hf",
        {"modelFormat": {"name": "huggingface"}, "runtime": "kserve-huggingfaceserver"},
        "kserve-huggingfaceserver",
    ),
]


def test_kserve_runtime_names_run_on_the_runtime_of_their_formats(
    kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    for name, model, _ in NAMED:
        isvcs.apply(manifest(name, {"model": dict(model)}))
    for name, model, runtime in NAMED:
        status = isvcs.wait_ready(name)["status"]
        assert status["runtime"]["name"] == runtime, (name, status["runtime"])
        if runtime != model["runtime"]:
            alias = f"model.runtime names '{model['runtime']}', an alias of ClusterServingRuntime {runtime}"
            assert status["runtime"]["reason"] == alias
        assert predictor_image(kube, namespace, name) == shipped_image(runtime)


@pytest.mark.parametrize(
    ("name", "model", "runtime", "protocol"),
    [
        ("triton-plain", {"modelFormat": {"name": "triton"}}, "triton", "v2"),
        ("hf-plain", {"modelFormat": {"name": "huggingface"}}, "kserve-huggingfaceserver", "v1"),
    ],
    ids=["triton", "huggingface"],
)
def test_a_plain_manifest_gets_its_formats_protocol_and_runtime(
    kube: k8s.ApiClient,
    namespace: str,
    operator: Path,
    name: str,
    model: dict[str, Any],
    runtime: str,
    protocol: str,
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(manifest(name, {"model": dict(model)}))
    status = isvcs.wait_ready(name)["status"]
    assert status["runtime"]["name"] == runtime
    assert status["runtime"]["reason"].startswith(
        f"auto-selected for {model['modelFormat']['name']} ({protocol})"
    )
    assert predictor_image(kube, namespace, name) == shipped_image(runtime)
    core = k8s.CoreV1Api(kube)
    eventually(
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.involved_object.name == name
            and e.reason == "RuntimeSelected"
            and e.message.startswith(f"ClusterServingRuntime {runtime}: ")
        ],
        what=f"the RuntimeSelected Event naming {runtime}",
    )


@pytest.mark.parametrize(
    ("name", "predictor", "kserve_runtime"),
    [
        (
            "pmml-named",
            {"model": {"modelFormat": {"name": "pmml"}, "runtime": "kserve-pmmlserver"}},
            "kserve-pmmlserver",
        ),
        ("paddle-legacy", {"paddle": {}}, "kserve-paddleserver"),
    ],
    ids=["pmml-by-runtime-name", "paddle-by-legacy-key"],
)
def test_formats_kubeserve_cannot_serve_say_which_kserve_runtime_is_missing(
    kube: k8s.ApiClient,
    namespace: str,
    operator: Path,
    name: str,
    predictor: dict[str, Any],
    kserve_runtime: str,
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(manifest(name, predictor))
    ready = isvcs.wait_condition(name, "Ready", status="False", reason="NoRuntime")
    format_name = KSERVE_UNSERVED[kserve_runtime]
    missing = f"Kubeserve ships no runtime for {format_name} (KServe serves it with {kserve_runtime})"
    assert missing in ready["message"], ready
    assert not k8s.AppsV1Api(kube).list_namespaced_deployment(namespace).items


def test_kubectl_get_shows_which_runtime_answers_to_which_kserve_name(
    kube: k8s.ApiClient, operator: Path
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/clusterservingruntimes"
    server = table_row(kube, f"{path}/kubeserve-server")
    for alias in ("kserve-sklearnserver", "kserve-xgbserver", "kserve-lgbserver"):
        assert alias in server["Aliases"], server
    assert "kserve-tritonserver" in table_row(kube, f"{path}/triton")["Aliases"]
    huggingface = table_row(kube, f"{path}/kserve-huggingfaceserver")
    assert huggingface["ModelType"] == "huggingface"
