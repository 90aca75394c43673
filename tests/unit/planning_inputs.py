"""Inputs for planning tests: services from dicts or the examples, and the shipped runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeserve.api.inference_service import InferenceService
from kubeserve.api.serving_runtime import ClusterServingRuntime
from kubeserve.config import OperatorConfig
from kubeserve.planning.plan import PlanInputs

REPO = Path(__file__).resolve().parents[2]


def shipped_runtimes() -> list[ClusterServingRuntime]:
    return [
        ClusterServingRuntime.model_validate(yaml.safe_load(path.read_text()))
        for path in sorted((REPO / "manifests" / "runtimes").glob("*.yaml"))
    ]


def initializer_runtimes() -> list[ClusterServingRuntime]:
    """The shipped runtimes, kubeserve-server with its storage initializer on (it ships fetching its
    model itself): for the tests of what the initializer gets."""
    runtimes = shipped_runtimes()
    for runtime in runtimes:
        runtime.spec.storage_helper = None
    return runtimes


def service(
    spec: dict[str, Any], name: str = "iris", namespace: str = "ml", **metadata: Any
) -> InferenceService:
    return InferenceService.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": 1, **metadata},
            "spec": spec,
        }
    )


def example(file: str, namespace: str = "ml") -> InferenceService:
    body = yaml.safe_load((REPO / "examples" / file).read_text())
    body["metadata"].update(namespace=namespace, uid="uid-1", generation=1)
    return InferenceService.model_validate(body)


def inputs(**overrides: Any) -> PlanInputs:
    values: dict[str, Any] = {"config": OperatorConfig(), "cluster_runtimes": shipped_runtimes()}
    values.update(overrides)
    return PlanInputs(**values)


SKLEARN = {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris"}}}
