"""The HorizontalPodAutoscaler of a component, when it may scale (maxReplicas > minReplicas).

cpu and memory are resource utilization targets, in percent of the request
(cpu at 80% by default, as in KServe). concurrency and rps are per-pod metrics
that the model server exports; the HPA reads them through a metrics adapter
(for example prometheus-adapter) that serves them under these names.

During a canary each track has its own HPA, and its bounds scale with the
track's share of the traffic: minReplicas and maxReplicas times the share,
rounded up, at least one. The canary's share is the requested percent from the
start (so it can become Ready); the stable track keeps its full bounds until
the canary is Ready and takes its share.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.components import ComponentSpec
from kubeserve.planning.rollout import share

DEFAULT_CPU_TARGET = 80
POD_METRICS = {"concurrency": "kubeserve_inflight_requests", "rps": "kubeserve_requests_per_second"}


def min_replicas(spec: ComponentSpec) -> int:
    """KServe floors minReplicas at 1 in raw mode: there is no scale to zero without a proxy."""
    return max(spec.min_replicas, 1)


def wants_autoscaler(spec: ComponentSpec) -> bool:
    return spec.max_replicas is not None and spec.max_replicas > min_replicas(spec)


def _metric(spec: ComponentSpec) -> dict[str, Any]:
    metric = spec.scale_metric or "cpu"
    if metric in POD_METRICS:
        return {
            "type": "Pods",
            "pods": {
                "metric": {"name": POD_METRICS[metric]},
                "target": {"type": "AverageValue", "averageValue": str(spec.scale_target or 1)},
            },
        }
    target = spec.scale_target or DEFAULT_CPU_TARGET
    return {
        "type": "Resource",
        "resource": {"name": metric, "target": {"type": "Utilization", "averageUtilization": target}},
    }


def share_bounds(spec: ComponentSpec, percent: int) -> tuple[int, int]:
    """(min, max) replicas of a track that gets `percent` of the component's traffic."""
    low = share(min_replicas(spec), percent)
    return low, max(low, share(spec.max_replicas or low, percent))


def build_autoscaler(
    metadata: dict[str, Any], target_name: str, spec: ComponentSpec, percent: int = 100
) -> dict[str, Any]:
    """The HPA of one track, which serves `percent` of the component's traffic."""
    low, high = share_bounds(spec, percent)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [_metric(spec)],
        },
    }
