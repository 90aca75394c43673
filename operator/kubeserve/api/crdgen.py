"""Generates the CRDs in crds/ from the API models: `python -m kubeserve.api.crdgen crds` (`make crds`).

pydantic's JSON schema is turned into a Kubernetes structural schema: `$ref`s
are inlined, optional fields lose their `null` branch, titles go, and every
node must end up with a type, so the API server accepts the schema and prunes
what it does not list. Generation fails on a property without a description.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kubeserve.api.common import GROUP, VERSION, ApiModel, CelRule
from kubeserve.api.inference_service import InferenceService, InferenceServiceSpec
from kubeserve.api.serving_runtime import ServingRuntimeSpec
from kubeserve.api.status import PREVIOUS_REVISION_TAG, InferenceServiceStatus

HEADER = (
    "# Generated from the API models in operator/kubeserve/api; do not edit. Regenerate with: make crds\n"
)

_NULL = {"type": "null"}
_KEY_ORDER = {key: rank for rank, key in enumerate(("type", "description", "default", "enum", "required"))}
"""Keys a reader looks for first come first in the YAML; the rest keep pydantic's order."""
_UNTYPED_OK = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


class SchemaError(ValueError):
    """A model cannot become a structural schema; the message names the property."""


def structural_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a model, as a CRD version's schema wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = dict(node)
    while True:
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # the field's own description and default win over the class's
        elif _NULL in node.get("anyOf", ()):
            branches = [branch for branch in node.pop("anyOf") if branch != _NULL]
            if len(branches) != 1:
                raise SchemaError(f"{path}: a union of several types is not structural")
            node = {**branches[0], **node}
        else:
            break
    node.pop("title", None)
    if "default" in node and node["default"] is None:
        del node["default"]
    if node.get("additionalProperties") is True:  # extra="allow": the API server prunes instead
        del node["additionalProperties"]
    if "description" in node:
        node["description"] = " ".join(node["description"].split())
    if "properties" in node:
        node["properties"] = {
            name: _convert(prop, defs, f"{path}.{name}") for name, prop in node["properties"].items()
        }
    if "items" in node:
        node["items"] = _convert(node["items"], defs, f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _convert(node["additionalProperties"], defs, f"{path}{{}}")
    if "type" not in node and not any(node.get(key) for key in _UNTYPED_OK):
        raise SchemaError(f"{path}: no type")
    return dict(sorted(node.items(), key=lambda item: _KEY_ORDER.get(item[0], len(_KEY_ORDER))))


def undescribed_properties(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the properties (at any depth) that have no description."""
    missing: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        where = f"{path}.{name}"
        if not prop.get("description"):
            missing.append(where)
        missing += undescribed_properties(prop, where)
    if "items" in schema:
        missing += undescribed_properties(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        missing += undescribed_properties(schema["additionalProperties"], f"{path}{{}}")
    return missing


@dataclass(frozen=True)
class Kind:
    """One CRD: its names, scope, description, models and printer columns."""

    kind: str
    plural: str
    scope: Literal["Namespaced", "Cluster"]
    description: str
    spec: type[ApiModel]
    status: type[ApiModel] | None = None
    rules: tuple[CelRule, ...] = ()
    """Rules over the whole object (its `metadata.name`, the one part of metadata CEL may read)."""
    required: tuple[str, ...] = ("spec",)
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("kubeserve",)
    columns: tuple[dict[str, Any], ...] = field(default=())

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"

    def crd(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "apiVersion": {
                "type": "string",
                "description": "Versioned schema of this object: serving.kubeserve.io/v1beta1.",
            },
            "kind": {"type": "string", "description": f"Kind of this object: {self.kind}."},
            "metadata": {"type": "object"},
            "spec": structural_schema(self.spec),
        }
        if self.status is not None:
            properties["status"] = structural_schema(self.status)
        schema: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "required": list(self.required),
            "properties": properties,
        }
        if self.rules:
            schema["x-kubernetes-validations"] = [rule.as_schema() for rule in self.rules]
        missing = undescribed_properties(schema)
        if missing != [".metadata"]:  # the API server owns metadata's schema
            raise SchemaError(f"{self.kind}: properties without a description: {missing}")
        names: dict[str, Any] = {
            "kind": self.kind,
            "listKind": f"{self.kind}List",
            "plural": self.plural,
            "singular": self.kind.lower(),
        }
        if self.short_names:
            names["shortNames"] = list(self.short_names)
        names["categories"] = list(self.categories)
        version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
        if self.status is not None:
            version["subresources"] = {"status": {}}
        version["additionalPrinterColumns"] = [
            *self.columns,
            _column("Age", ".metadata.creationTimestamp", "date"),
        ]
        version["schema"] = {"openAPIV3Schema": schema}
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{self.plural}.{GROUP}"},
            "spec": {"group": GROUP, "names": names, "scope": self.scope, "versions": [version]},
        }


def _column(name: str, json_path: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": json_path, **extra}


_PREDICTOR = ".status.components.predictor"
_RUNTIME_COLUMNS = (
    _column("Disabled", ".spec.disabled", "boolean"),
    _column("ModelType", ".spec.supportedModelFormats[*].name"),
    _column("Aliases", ".spec.aliases"),
    _column("Containers", ".spec.containers[*].name"),
)

KINDS = (
    Kind(
        kind="InferenceService",
        plural="inferenceservices",
        scope="Namespaced",
        description="A model served behind a URL: a predictor, and optionally a transformer and an "
        "explainer. Field names and meaning follow KServe's serving.kserve.io/v1beta1.",
        spec=InferenceServiceSpec,
        status=InferenceServiceStatus,
        rules=InferenceService.cel_rules,
        short_names=("isvc",),
        categories=("all", "kubeserve"),
        columns=(
            _column("URL", ".status.url"),
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            _column("Prev", f'{_PREDICTOR}.traffic[?(@.tag=="{PREVIOUS_REVISION_TAG}")].percent', "integer"),
            _column("Latest", f"{_PREDICTOR}.traffic[?(@.latestRevision==true)].percent", "integer"),
            _column("Runtime", ".status.runtime.name"),
            _column("PrevRolledoutRevision", f"{_PREDICTOR}.previousRolledoutRevision", priority=1),
            _column("LatestReadyRevision", f"{_PREDICTOR}.latestReadyRevision", priority=1),
        ),
    ),
    Kind(
        kind="ServingRuntime",
        plural="servingruntimes",
        scope="Namespaced",
        description="A model server for some model formats and protocols, in one namespace.",
        spec=ServingRuntimeSpec,
        columns=_RUNTIME_COLUMNS,
    ),
    Kind(
        kind="ClusterServingRuntime",
        plural="clusterservingruntimes",
        scope="Cluster",
        description="A model server for some model formats and protocols, for every namespace.",
        spec=ServingRuntimeSpec,
        columns=_RUNTIME_COLUMNS,
    ),
)


class _Dumper(yaml.SafeDumper):
    """Writes a schema shared by several properties out in full each time: CRDs take no YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> dict[str, str]:
    """Every CRD file's name and text, as `make crds` writes them."""
    return {
        kind.file_name: HEADER + yaml.dump(kind.crd(), Dumper=_Dumper, sort_keys=False, width=110)
        for kind in KINDS
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kubeserve.api.crdgen", description=__doc__)
    parser.add_argument("out_dir", type=Path, help="directory to write the CRD YAML into (crds)")
    out_dir: Path = parser.parse_args(argv).out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out_dir / name).write_text(text)


if __name__ == "__main__":
    main()
