"""The Deployment of a component revision."""

from __future__ import annotations

from typing import Any

DEFAULT_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
# An accelerator rollout replaces pods in place: a surge pod would wait for a GPU that the old pod
# holds, and a cluster with no spare GPU would never finish the rollout.
ACCELERATOR_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def build_deployment(
    metadata: dict[str, Any],
    selector: dict[str, str],
    template: dict[str, Any],
    replicas: int | None,
    strategy: dict[str, Any],
) -> dict[str, Any]:
    """`replicas` is None when an autoscaler owns the count, so applying never fights the HPA."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": strategy,
        "template": template,
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}
