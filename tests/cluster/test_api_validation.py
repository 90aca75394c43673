"""The real API server enforces the CRDs: bad objects are refused with the field named, examples are accepted.

The CRDs are applied server-side from crds/ (which also proves their CEL rules
compile within the API server's cost budget), then objects are created with
`dryRun=All` and strict field validation, exactly as `kubectl apply` sends them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import dynamic

from kubeserve.api import GROUP, VERSION
from tests.polling import eventually

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "crds").glob("*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
FIELD_MANAGER = "kubeserve-tests"

MODEL = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}
CONTAINERS = [{"name": "kserve-container", "image": "registry.example.com/model:1"}]


@pytest.fixture(scope="module")
def crds(kube: k8s.ApiClient) -> None:
    """The CRDs from crds/, applied server-side and Established."""
    definitions = dynamic.DynamicClient(kube).resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    extensions = k8s.ApiextensionsV1Api(kube)
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        definitions.server_side_apply(body=crd, name=name, field_manager=FIELD_MANAGER, force_conflicts=True)

        def established(name: str = name) -> bool:
            conditions = extensions.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        eventually(established, what=f"CRD {name} Established")


def isvc(predictor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "bad"},
        "spec": {"predictor": predictor, **spec},
    }


def with_model(**model: Any) -> dict[str, Any]:
    return isvc({"model": {**MODEL, **model}})


def runtime(**spec: Any) -> dict[str, Any]:
    base = {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True}], "containers": CONTAINERS}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServingRuntime",
        "metadata": {"name": "bad"},
        "spec": {**base, **spec},
    }


def create(kube: k8s.ApiClient, namespace: str, obj: dict[str, Any]) -> None:
    """Create obj as a dry run, refusing unknown fields, as `kubectl apply` does."""
    plural = {"InferenceService": "inferenceservices", "ServingRuntime": "servingruntimes"}[obj["kind"]]
    k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, obj, dry_run="All", field_validation="Strict"
    )


def refusal(kube: k8s.ApiClient, namespace: str, obj: dict[str, Any]) -> str:
    """The API server's message refusing obj; fails the test when obj is accepted."""
    with pytest.raises(k8s.ApiException) as refused:
        create(kube, namespace, obj)
    assert refused.value.status in (400, 422), refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


# (case, object, text the refusal must contain: the field's path, and for CEL rules part of the message)
BAD = [
    ("no implementation", isvc({"minReplicas": 1}), "spec.predictor: Invalid value"),
    (
        "model and a container named as its own",
        isvc({"model": MODEL, "containers": CONTAINERS}),
        "none may be named kserve-container",
    ),
    ("model and legacy key", isvc({"model": MODEL, "sklearn": {}}), "exactly one of model"),
    ("two legacy keys", isvc({"sklearn": {}, "xgboost": {}}), "exactly one of model"),
    (
        "min above max",
        isvc({"model": MODEL, "minReplicas": 3, "maxReplicas": 2}),
        "spec.predictor.minReplicas",
    ),
    (
        "transformer min above max",
        isvc({"model": MODEL}, transformer={"containers": CONTAINERS, "minReplicas": 4, "maxReplicas": 1}),
        "spec.transformer.minReplicas",
    ),
    (
        "canary above 100",
        isvc({"model": MODEL, "canaryTrafficPercent": 101}),
        "spec.predictor.canaryTrafficPercent",
    ),
    (
        "canary below 0",
        isvc({"model": MODEL, "canaryTrafficPercent": -5}),
        "spec.predictor.canaryTrafficPercent",
    ),
    ("scaleMetric gpu", isvc({"model": MODEL, "scaleMetric": "gpu"}), "spec.predictor.scaleMetric"),
    ("negative minReplicas", isvc({"model": MODEL, "minReplicas": -1}), "spec.predictor.minReplicas"),
    ("zero maxReplicas", isvc({"model": MODEL, "maxReplicas": 0}), "spec.predictor.maxReplicas"),
    ("minReplicas a string", isvc({"model": MODEL, "minReplicas": "two"}), "spec.predictor.minReplicas"),
    ("ftp storageUri", with_model(storageUri="ftp://host/m"), "spec.predictor.model.storageUri"),
    ("relative storageUri", with_model(storageUri="bucket/m"), "spec.predictor.model.storageUri"),
    (
        "legacy ftp storageUri",
        isvc({"sklearn": {"storageUri": "ftp://h/m"}}),
        "spec.predictor.sklearn.storageUri",
    ),
    ("storageUri too long", with_model(storageUri="s3://b/" + "m" * 2048), "spec.predictor.model.storageUri"),
    ("no modelFormat", isvc({"model": {"storageUri": "gs://b/m"}}), "spec.predictor.model.modelFormat"),
    ("no modelFormat.name", isvc({"model": {"modelFormat": {}}}), "spec.predictor.model.modelFormat.name"),
    ("protocolVersion v3", with_model(protocolVersion="v3"), "spec.predictor.model.protocolVersion"),
    ("accelerator not a name", with_model(accelerator="NVIDIA A100"), "spec.predictor.model.accelerator"),
    ("unknown model field", with_model(storageURI="gs://b/m"), "spec.predictor.model.storageURI"),
    ("unknown component field", isvc({"model": MODEL, "replicas": 2}), "spec.predictor.replicas"),
    ("container without name", isvc({"containers": [{"image": "i"}]}), "spec.predictor.containers[0].name"),
    ("transformer without containers", isvc({"model": MODEL}, transformer={}), "spec.transformer.containers"),
    ("no predictor", {**isvc({}), "spec": {}}, "spec.predictor"),
    ("no spec", {k: v for k, v in isvc({}).items() if k != "spec"}, "spec"),
    ("toleration effect", isvc({"model": MODEL, "tolerations": [{"effect": "No"}]}), "tolerations[0].effect"),
    ("runtime without containers", runtime(containers=[]), "spec.containers"),
    ("runtime priority 0", runtime(supportedModelFormats=[{"name": "x", "priority": 0}]), "priority"),
    ("runtime protocol", runtime(protocolVersions=["v9"]), "spec.protocolVersions[0]"),
    (
        "runtimeVersion climbs",
        with_model(runtimeVersion="../../evil"),
        "spec.predictor.model.runtimeVersion: Invalid value: runtimeVersion must be an image tag "
        "(letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-') or a digest",
    ),
    (
        "storageUri climbs",
        with_model(storageUri="s3://bucket/models/../../etc"),
        "spec.predictor.model.storageUri: Invalid value: storageUri must not have a '..' path segment",
    ),
    (
        "image with a climbing tag",
        isvc({"containers": [{"name": "c", "image": "server:../../evil"}]}),
        'spec.predictor.containers[0].image: Invalid value: "server:../../evil"',
    ),
    (
        "runtime accelerator image",
        runtime(acceleratorImages={"nvidia-a100": "server:../gpu"}),
        'spec.acceleratorImages.nvidia-a100: Invalid value: "server:../gpu"',
    ),
    (
        "name too long for its children",
        {**isvc({"model": MODEL}), "metadata": {"name": "n" * 45}},
        "metadata.name must be at most 44 characters",
    ),
    ("name with a dot", {**isvc({"model": MODEL}), "metadata": {"name": "a.b"}}, "a DNS-1035 label"),
]


@pytest.mark.parametrize(("case", "obj", "expected"), BAD, ids=[case for case, _, _ in BAD])
def test_api_server_refuses_bad_objects(
    crds: None, kube: k8s.ApiClient, namespace: str, case: str, obj: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(kube, namespace, obj)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_api_server_accepts_every_example(
    crds: None, kube: k8s.ApiClient, namespace: str, path: Path
) -> None:
    create(kube, namespace, yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    "uri",
    [
        "gs://b/m",
        "s3://b/m",
        "https://h/m.onnx",
        "https://h/m.onnx?next=/../x",
        "hf://org/m",
        "pvc://claim/m",
        "/mnt/m",
    ],
)
def test_api_server_accepts_known_storage_schemes(
    crds: None, kube: k8s.ApiClient, namespace: str, uri: str
) -> None:
    create(kube, namespace, with_model(storageUri=uri))


@pytest.mark.parametrize("version", ["2.6.2", "26.08-py3", "sha256:" + "0123456789abcdef" * 4])
def test_api_server_accepts_runtime_version_tags_and_digests(
    crds: None, kube: k8s.ApiClient, namespace: str, version: str
) -> None:
    create(kube, namespace, with_model(runtimeVersion=version))


def test_api_server_fills_defaults(crds: None, kube: k8s.ApiClient, namespace: str) -> None:
    created = k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", with_model(), dry_run="All"
    )
    assert created["spec"]["predictor"]["minReplicas"] == 1
    assert "protocolVersion" not in created["spec"]["predictor"]["model"]


def table_row(kube: k8s.ApiClient, path: str) -> dict[str, Any]:
    """The object as `kubectl get` shows it: the API server's Table rendering, cells by column name."""
    table = (
        dynamic.DynamicClient(kube)
        .request("GET", path, header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        .to_dict()
    )
    names = [column["name"] for column in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def test_kubectl_get_columns_show_the_status(crds: None, kube: k8s.ApiClient, namespace: str) -> None:
    objects = k8s.CustomObjectsApi(kube)
    obj = {**with_model(), "metadata": {"name": "iris"}}
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices", obj)
    status = {
        "url": "http://iris-predictor.ns.svc.cluster.local",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
        "components": {
            "predictor": {
                "latestReadyRevision": "iris-predictor-b2",
                "previousRolledoutRevision": "iris-predictor-a1",
                "traffic": [
                    {
                        "revisionName": "iris-predictor-a1",
                        "percent": 90,
                        "tag": "prev",
                        "latestRevision": False,
                    },
                    {"revisionName": "iris-predictor-b2", "percent": 10, "latestRevision": True},
                ],
            }
        },
        "runtime": {"name": "kubeserve-sklearn", "kind": "ClusterServingRuntime", "reason": "auto-selected"},
    }
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "inferenceservices", "iris", {"status": status}
    )
    row = table_row(kube, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/inferenceservices/iris")
    assert row["URL"] == status["url"]
    assert row["Ready"] == "True"
    assert (row["Prev"], row["Latest"]) == (90, 10)
    assert row["Runtime"] == "kubeserve-sklearn"
    assert row["PrevRolledoutRevision"] == "iris-predictor-a1"


def test_short_name_and_category(crds: None, kube: k8s.ApiClient) -> None:
    resources = k8s.CustomObjectsApi(kube).get_api_resources(GROUP, VERSION).resources
    isvc_resource = next(r for r in resources if r.name == "inferenceservices")
    assert isvc_resource.short_names == ["isvc"]
    assert "all" in isvc_resource.categories


def kubectl() -> Callable[..., str]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")

    def run(*args: str) -> str:
        return subprocess.run(
            [binary, *args], check=True, capture_output=True, text=True, env=os.environ
        ).stdout

    return run


def test_kubectl_explain_describes_the_model(crds: None, kubeconfig: str) -> None:
    run = kubectl()

    def explained() -> str | None:
        try:
            return run("explain", "isvc.spec.predictor.model", "--kubeconfig", kubeconfig)
        except subprocess.CalledProcessError:  # the published OpenAPI lags the CRD by a moment
            return None

    text = eventually(explained, what="kubectl explain isvc.spec.predictor.model")
    for field in ("modelFormat", "storageUri", "protocolVersion", "runtime", "accelerator"):
        assert field in text
    assert "Where the model is" in text
