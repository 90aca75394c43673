"""The generated CRDs are structural, fully described, and show the columns and names users expect."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.api.common import IMAGE_PATTERN
from kubeserve.api.crdgen import undescribed_properties
from tests.unit.crd_schema import compile_cel, crds, requires_cel, rules, schema

KINDS = ("InferenceService", "ServingRuntime", "ClusterServingRuntime")


def nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node under node, with its path."""
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += nodes(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    assert undescribed_properties(schema(kind)) == [".metadata"]


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    for path, node in nodes(schema(kind)):
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "type" in node, f"{path} has no type"
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title"} & node.keys(), path


def test_model_fields_explain_themselves() -> None:
    """`kubectl explain isvc.spec.predictor.model` lists the model's own fields with descriptions."""
    model = schema("InferenceService")["properties"]["spec"]["properties"]["predictor"]["properties"]["model"]
    assert model["required"] == ["modelFormat"]
    assert model["properties"]["modelFormat"]["required"] == ["name"]
    for field in ("modelFormat", "runtime", "runtimeVersion", "storageUri", "protocolVersion", "accelerator"):
        assert model["properties"][field]["description"], field
    assert model["properties"]["protocolVersion"]["enum"] == ["v1", "v2", "grpc-v1", "grpc-v2"]
    assert "default" not in model["properties"]["protocolVersion"], "KServe leaves it unset, meaning v1"


def test_component_scaling_fields() -> None:
    predictor = schema("InferenceService")["properties"]["spec"]["properties"]["predictor"]
    fields = predictor["properties"]
    assert fields["minReplicas"]["default"] == 1
    assert (fields["canaryTrafficPercent"]["minimum"], fields["canaryTrafficPercent"]["maximum"]) == (0, 100)
    assert fields["scaleMetric"]["enum"] == ["cpu", "memory", "concurrency", "rps"]


def test_inference_service_names_and_status() -> None:
    crd = crds()["InferenceService"]
    assert crd["metadata"]["name"] == "inferenceservices.serving.kubeserve.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["isvc"]
    assert "all" in crd["spec"]["names"]["categories"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1beta1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert version["schema"]["openAPIV3Schema"]["required"] == ["spec"]
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == ["predictor"]


def test_printer_columns() -> None:
    columns = {
        c["name"]: c for c in crds()["InferenceService"]["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    default_view = [name for name, c in columns.items() if not c.get("priority")]
    assert default_view == ["URL", "Ready", "Prev", "Latest", "Runtime", "Age"]
    assert columns["URL"]["jsonPath"] == ".status.url"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Prev"]["jsonPath"] == '.status.components.predictor.traffic[?(@.tag=="prev")].percent'
    assert columns["Latest"]["jsonPath"] == (
        ".status.components.predictor.traffic[?(@.latestRevision==true)].percent"
    )
    assert columns["Runtime"]["jsonPath"] == ".status.runtime.name"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


@pytest.mark.parametrize(
    ("kind", "scope"), [("ServingRuntime", "Namespaced"), ("ClusterServingRuntime", "Cluster")]
)
def test_runtime_kinds(kind: str, scope: str) -> None:
    crd = crds()[kind]
    assert crd["spec"]["scope"] == scope
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["containers"]
    assert spec["properties"]["acceleratorImages"]["additionalProperties"] == {
        "type": "string",
        "pattern": IMAGE_PATTERN,
    }
    formats = spec["properties"]["supportedModelFormats"]["items"]["properties"]
    assert set(formats) == {"name", "version", "autoSelect", "priority"}


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = schema("InferenceService")["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["required"] == ["type", "status"]


@requires_cel
@pytest.mark.parametrize("kind", KINDS)
def test_cel_rules_compile_and_have_messages(kind: str) -> None:
    for rule in rules(schema(kind)):
        compile_cel(rule["rule"])
        assert rule["message"]


def test_strings_matched_by_cel_are_bounded() -> None:
    """`matches` costs by string length; the API server refuses rules whose worst case is too dear."""
    for path, node in nodes(schema("InferenceService")):
        for rule in node.get("x-kubernetes-validations", ()):
            if ".matches(" in rule["rule"]:
                field = rule["rule"].split(".matches(")[0].rsplit("self.", 1)[1]
                if field == "metadata.name":  # the API server's own bound: 253 characters
                    continue
                assert node["properties"][field]["maxLength"] <= 4096, f"{path}.{field}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_image_reference_is_checked(kind: str) -> None:
    """Whatever container a spec names an image for, the API server checks the reference's grammar."""
    images = [node for path, node in nodes(schema(kind)) if path.endswith(".image")]
    assert images
    assert all(node.get("pattern") == IMAGE_PATTERN for node in images)
