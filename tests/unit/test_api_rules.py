"""Every rule of the API accepts good input and refuses bad input with a message that names the field.

A rule written as CEL is checked twice on each case: by the pydantic models (what
the operator enforces when it parses) and by evaluating the CRD's own CEL rule
(what the API server enforces), so the two can never drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve.api import (
    LEGACY_FRAMEWORKS,
    InferenceService,
    ModelFormat,
    ModelSpec,
    PredictorSpec,
    ServingRuntime,
)
from tests.unit.crd_schema import cel_failures, requires_cel, schema
from tests.unit.storage_rule_cases import STORAGE_CEL_CASES, STORAGE_SCHEMA_CASES

MODEL = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}
SHA256 = "sha256:" + "0123456789abcdef" * 4
CONTAINERS = [{"name": "kserve-container", "image": "registry.example.com/model:1"}]


def isvc(predictor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": {"predictor": predictor, **spec},
    }


def with_model(**model: Any) -> dict[str, Any]:
    return isvc({"model": {**MODEL, **model}})


# (case, InferenceService object, the field a refusal must name; None when the object is good)
CEL_CASES = [
    ("model", isvc({"model": MODEL}), None),
    ("containers", isvc({"containers": CONTAINERS}), None),
    *[(f"legacy {key}", isvc({key: {"storageUri": "s3://b/m"}}), None) for key in LEGACY_FRAMEWORKS],
    ("no implementation", isvc({"minReplicas": 1}), "model, containers"),
    ("model and containers", isvc({"model": MODEL, "containers": CONTAINERS}), "model, containers"),
    ("model and legacy key", isvc({"model": MODEL, "sklearn": {}}), "model, containers"),
    ("two legacy keys", isvc({"sklearn": {}, "xgboost": {}}), "model, containers"),
    ("min below max", isvc({"model": MODEL, "minReplicas": 1, "maxReplicas": 3}), None),
    ("min equals max", isvc({"model": MODEL, "minReplicas": 2, "maxReplicas": 2}), None),
    ("min above max", isvc({"model": MODEL, "minReplicas": 3, "maxReplicas": 2}), "minReplicas"),
    (
        "transformer min above max",
        isvc({"model": MODEL}, transformer={"containers": CONTAINERS, "minReplicas": 2, "maxReplicas": 1}),
        "minReplicas",
    ),
    *[
        (f"storageUri {uri}", with_model(storageUri=uri), None)
        for uri in (
            "gs://bucket/model",
            "s3://bucket/path/to/model",
            "https://example.com/model.onnx",
            "http://minio.local:9000/model",
            "hf://Qwen/Qwen2.5-0.5B",
            "oci://registry.example.com/models/iris:1",
            "pvc://models-claim/iris",
            "pvc://models-claim",
            "/mnt/models/iris",
        )
    ],
    *[
        (f"storageUri {uri!r}", with_model(storageUri=uri), "storageUri")
        for uri in ("ftp://host/model", "bucket/model", "s3://", "pvc://", "pvc:///path", "/", "file:///m")
    ],
    ("legacy key bad storageUri", isvc({"sklearn": {"storageUri": "ftp://x"}}), "storageUri"),
    *[
        (f"storageUri {uri} keeps its dots", with_model(storageUri=uri), None)
        for uri in (
            "https://h/model.onnx?next=/../x",
            "https://h/model.onnx#/../x",
            "s3://b/..models/x",
            "s3://b/models../x",
            "gs://b/a...b/model",
            "/mnt/models/.hidden",
        )
    ],
    *[
        (f"storageUri {uri} climbs", with_model(storageUri=uri), "'..' path segment")
        for uri in (
            "s3://b/../../etc",
            "s3://b/models/..",
            "s3://../x",
            "gs://b/models/../secret",
            "https://h/a/../model.onnx?sig=1",
            "hf://org/..",
            "pvc://claim/../other",
            "/mnt/models/../etc",
        )
    ],
    ("legacy key storageUri climbs", isvc({"sklearn": {"storageUri": "s3://b/../x"}}), "storageUri"),
    *[
        (f"runtimeVersion {version}", with_model(runtimeVersion=version), None)
        for version in (
            "2.6.2",
            "latest",
            "v0.28.0",
            "26.08-py3",
            "_build.1",
            "a" * 128,
            SHA256,
            "sha512:" + "ab" * 64,
        )
    ],
    *[
        (
            f"runtimeVersion {version!r}",
            with_model(runtimeVersion=version),
            "runtimeVersion must be an image tag",
        )
        for version in (
            "../../evil",
            "1.0/evil",
            ".hidden",
            "-rc1",
            "",
            "2.1 ",
            "a" * 129,
            "sha256:abc",
            SHA256.upper(),
            "md5:" + "0" * 32,
            f"2.1@{SHA256}",
        )
    ],
    ("legacy key runtimeVersion", isvc({"tensorflow": {"runtimeVersion": "../x"}}), "runtimeVersion"),
    ("name of 44", {**with_model(), "metadata": {"name": "a" * 44}}, None),
    ("name of 45", {**with_model(), "metadata": {"name": "a" * 45}}, "metadata.name"),
    ("name with a dot", {**with_model(), "metadata": {"name": "a.b"}}, "metadata.name"),
    ("name starting with a digit", {**with_model(), "metadata": {"name": "1a"}}, "metadata.name"),
    *STORAGE_CEL_CASES,
]


def _ids(cases: list[tuple[str, Any, Any]]) -> list[str]:
    return [case[0] for case in cases]


@pytest.mark.parametrize(("case", "obj", "field"), CEL_CASES, ids=_ids(CEL_CASES))
def test_models_enforce_the_rule(case: str, obj: dict[str, Any], field: str | None) -> None:
    if field is None:
        InferenceService.model_validate(obj)
    else:
        with pytest.raises(ValidationError, match=field):
            InferenceService.model_validate(obj)


@requires_cel
@pytest.mark.parametrize(("case", "obj", "field"), CEL_CASES, ids=_ids(CEL_CASES))
def test_crd_cel_rules_agree_with_the_models(case: str, obj: dict[str, Any], field: str | None) -> None:
    failures = cel_failures(obj, schema("InferenceService"))
    if field is None:
        assert failures == []
    else:
        assert failures, "the CRD accepts what the models refuse"
        assert all(field in failure for failure in failures), failures


# Plain schema constraints (enum, minimum, required, pattern): the API server's messages name the
# field by its path, so only the models' messages need checking here.
SCHEMA_CASES = [
    ("canary below 0", isvc({"model": MODEL, "canaryTrafficPercent": -1}), "canaryTrafficPercent"),
    ("canary above 100", isvc({"model": MODEL, "canaryTrafficPercent": 101}), "canaryTrafficPercent"),
    ("canary 0", isvc({"model": MODEL, "canaryTrafficPercent": 0}), None),
    ("canary 100", isvc({"model": MODEL, "canaryTrafficPercent": 100}), None),
    ("scaleMetric gpu", isvc({"model": MODEL, "scaleMetric": "gpu"}), "scaleMetric"),
    *[(f"scaleMetric {m}", isvc({"model": MODEL, "scaleMetric": m}), None) for m in ("cpu", "memory", "rps")],
    ("negative minReplicas", isvc({"model": MODEL, "minReplicas": -1}), "minReplicas"),
    ("zero maxReplicas", isvc({"model": MODEL, "maxReplicas": 0}), "maxReplicas"),
    ("minReplicas a string", isvc({"model": MODEL, "minReplicas": "two"}), "minReplicas"),
    ("model without modelFormat", isvc({"model": {"storageUri": "gs://b/m"}}), "modelFormat"),
    ("modelFormat without name", isvc({"model": {"modelFormat": {"version": "1"}}}), "modelFormat.name"),
    ("modelFormat empty name", isvc({"model": {"modelFormat": {"name": ""}}}), "modelFormat.name"),
    ("protocolVersion v3", with_model(protocolVersion="v3"), "protocolVersion"),
    *[(f"protocol {p}", with_model(protocolVersion=p), None) for p in ("v1", "v2", "grpc-v1", "grpc-v2")],
    ("accelerator class", with_model(accelerator="nvidia-a100"), None),
    ("accelerator not a name", with_model(accelerator="NVIDIA A100"), "accelerator"),
    ("storageUri too long", with_model(storageUri="s3://b/" + "m" * 2048), "storageUri"),
    ("container without name", isvc({"containers": [{"image": "i"}]}), "containers.0.name"),
    *[
        (f"image {image}", isvc({"containers": [{"name": "c", "image": image}]}), None)
        for image in (
            "busybox",
            "kserve/image-transformer:latest",
            "registry.example.com/team/custom-model:1.0",
            "localhost:5000/a/b_c__d-e:1",
            f"[fd00::1]:5000/img:1@{SHA256}",
            f"ghcr.io/kubeserve/model-server@{SHA256}",
        )
    ],
    *[
        (f"image {image!r}", isvc({"containers": [{"name": "c", "image": image}]}), "containers.0.image")
        for image in ("", "Busybox", "img:../../evil", "../img", "img:", "img@sha256:abc", "img:1 ", "a//b")
    ],
    ("model image", with_model(image="Registry/Image"), "model.image"),
    (
        "transformer init container image",
        isvc(
            {"model": MODEL},
            transformer={"containers": CONTAINERS, "initContainers": [{"name": "init", "image": "x:../y"}]},
        ),
        "transformer.initContainers.0.image",
    ),
    ("empty containers", isvc({"containers": []}), "containers"),
    ("port 0", isvc({"containers": [{"name": "c", "ports": [{"containerPort": 0}]}]}), "containerPort"),
    ("transformer without containers", isvc({"model": MODEL}, transformer={}), "transformer.containers"),
    ("explainer without containers", isvc({"model": MODEL}, explainer={}), "explainer.containers"),
    ("no predictor", {"spec": {"transformer": {"containers": CONTAINERS}}}, "predictor"),
    ("logger mode", isvc({"model": MODEL, "logger": {"mode": "everything"}}), "logger.mode"),
    ("toleration effect", isvc({"model": MODEL, "tolerations": [{"effect": "No"}]}), "tolerations.0.effect"),
    *STORAGE_SCHEMA_CASES,
]


@pytest.mark.parametrize(("case", "obj", "field"), SCHEMA_CASES, ids=_ids(SCHEMA_CASES))
def test_models_enforce_schema_constraints(case: str, obj: dict[str, Any], field: str | None) -> None:
    if field is None:
        InferenceService.model_validate(obj)
    else:
        with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
            InferenceService.model_validate(obj)


RUNTIME = {
    "apiVersion": "serving.kubeserve.io/v1beta1",
    "kind": "ServingRuntime",
    "metadata": {"name": "r"},
    "spec": {
        "supportedModelFormats": [{"name": "sklearn", "autoSelect": True, "priority": 1}],
        "containers": [{"name": "kserve-container", "image": "kubeserve/server:1"}],
    },
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({}, None),
        ({"containers": []}, "spec.containers"),
        ({"supportedModelFormats": [{"name": "sklearn", "priority": 0}]}, "supportedModelFormats.0.priority"),
        ({"supportedModelFormats": [{"autoSelect": True}]}, "supportedModelFormats.0.name"),
        ({"protocolVersions": ["v9"]}, "protocolVersions.0"),
        ({"containers": [{"name": "c", "image": "server:../../evil"}]}, "spec.containers.0.image"),
        ({"acceleratorImages": {"nvidia.com/gpu": f"server-gpu@{SHA256}"}}, None),
        ({"acceleratorImages": {"nvidia-a100": "server:../gpu"}}, "acceleratorImages.nvidia-a100"),
    ],
)
def test_serving_runtime_constraints(change: dict[str, Any], field: str | None) -> None:
    obj = {**RUNTIME, "spec": {**RUNTIME["spec"], **change}}
    if field is None:
        ServingRuntime.model_validate(obj)
    else:
        with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
            ServingRuntime.model_validate(obj)


@pytest.mark.parametrize("framework", LEGACY_FRAMEWORKS)
def test_a_legacy_key_means_model_of_that_format(framework: str) -> None:
    legacy = {
        "storageUri": "s3://b/m",
        "runtimeVersion": "2.1",
        "args": ["--workers=2"],
        "accelerator": "a-l4",
    }
    predictor = PredictorSpec.model_validate({framework: legacy})
    model = predictor.effective_model()
    assert model is not None
    assert model.to_dict() == {**legacy, "modelFormat": {"name": framework}}
    assert predictor.implementations() == [framework]


def test_legacy_framework_keys_are_all_predictor_fields() -> None:
    fields = {info.alias or name for name, info in PredictorSpec.model_fields.items()}
    assert set(LEGACY_FRAMEWORKS) <= fields


def test_custom_containers_have_no_model() -> None:
    assert PredictorSpec.model_validate({"containers": CONTAINERS}).effective_model() is None


def test_unset_protocols_count_as_v1() -> None:
    model = PredictorSpec.model_validate({"model": MODEL}).effective_model()
    assert model is not None and model.protocol == "v1"
    runtime = ServingRuntime.model_validate(RUNTIME)
    assert runtime.spec.supported_protocols == ["v1"]


def test_accelerator_image_by_class_then_resource_name() -> None:
    images = {"nvidia.com/gpu": "server:gpu", "nvidia-h100": "server:h100"}
    spec = {**RUNTIME["spec"], "acceleratorImages": images}
    runtime = ServingRuntime.model_validate({**RUNTIME, "spec": spec}).spec
    assert runtime.accelerator_image("nvidia-h100", ["nvidia.com/gpu"]) == "server:h100"
    assert runtime.accelerator_image("nvidia-a100", ["nvidia.com/gpu"]) == "server:gpu"
    assert runtime.accelerator_image("amd-mi300", ["amd.com/gpu"]) is None
    assert runtime.accelerator_image(None, []) is None


def test_unknown_keys_are_tolerated_and_kept() -> None:
    obj = isvc({"model": {**MODEL, "futureField": {"x": 1}}, "futureComponentField": True})
    parsed = InferenceService.model_validate(obj)
    assert parsed.to_dict()["spec"]["predictor"]["model"]["futureField"] == {"x": 1}
    assert parsed.to_dict()["spec"]["predictor"]["futureComponentField"] is True


def test_python_names_are_snake_case_and_json_is_camel_case() -> None:
    model = ModelSpec(model_format=ModelFormat(name="sklearn"), storage_uri="gs://b/m")
    spec = PredictorSpec(model=model, min_replicas=2, canary_traffic_percent=10)
    assert spec.to_dict() == {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"},
        "minReplicas": 2,
        "canaryTrafficPercent": 10,
    }


def test_components_lists_those_present_predictor_first() -> None:
    parsed = InferenceService.model_validate(isvc({"model": MODEL}, transformer={"containers": CONTAINERS}))
    assert list(parsed.spec.components()) == ["predictor", "transformer"]
