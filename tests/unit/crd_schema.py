"""Offline stand-ins for what the API server does with the CRD schemas: pruning and CEL rules.

They let unit tests check examples and manifests against the checked-in CRDs
without a cluster; tests/cluster/test_api_validation.py checks the real thing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    import celpy
except ImportError:  # cel-python is a test-only dependency; without it the CEL checks skip
    celpy = None

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES_DIR = ROOT / "examples"

requires_cel = pytest.mark.skipif(celpy is None, reason="cel-python is not installed")


@functools.cache
def crds() -> dict[str, dict[str, Any]]:
    """The checked-in CRDs by kind (shared: callers must not change them)."""
    loaded = (yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml")))
    return {crd["spec"]["names"]["kind"]: crd for crd in loaded}


def schema(kind: str) -> dict[str, Any]:
    schema_: dict[str, Any] = crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema_


def pruned_paths(obj: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the fields in obj that the schema does not know, which the API server would drop."""
    if isinstance(obj, list):
        items = node.get("items", {})
        return [p for i, item in enumerate(obj) for p in pruned_paths(item, items, f"{path}[{i}]")]
    if not isinstance(obj, dict) or node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if path == ".metadata":
        return []
    found: list[str] = []
    properties = node.get("properties", {})
    values = node.get("additionalProperties")
    for key, value in obj.items():
        if key in properties:
            found += pruned_paths(value, properties[key], f"{path}.{key}")
        elif isinstance(values, dict):
            found += pruned_paths(value, values, f"{path}.{key}")
        else:
            found.append(f"{path}.{key}")
    return found


def cel_failures(obj: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """`path: message` of each x-kubernetes-validations rule that obj breaks, at any depth."""
    found: list[str] = []
    for rule in node.get("x-kubernetes-validations", ()):
        program = compile_cel(rule["rule"])
        if not program.evaluate({"self": celpy.json_to_cel(obj)}):
            found.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += cel_failures(item, node.get("items", {}), f"{path}[{i}]")
    elif isinstance(obj, dict):
        properties = node.get("properties", {})
        for key, value in obj.items():
            child = properties.get(key, node.get("additionalProperties"))
            if isinstance(child, dict):
                found += cel_failures(value, child, f"{path}.{key}")
    return found


@functools.cache
def compile_cel(expression: str) -> Any:
    """A CEL program; raises on a syntax error, as the API server would refuse the CRD."""
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def rules(node: dict[str, Any]) -> list[dict[str, str]]:
    """Every x-kubernetes-validations entry in a schema, at any depth."""
    found = list(node.get("x-kubernetes-validations", ()))
    children = [*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")]
    for child in children:
        if isinstance(child, dict):
            found += rules(child)
    return found
