"""The HorizontalPodAutoscaler of a component, when it may scale (maxReplicas > minReplicas).

cpu and memory are resource utilization targets, in percent of the request
(cpu at 80% by default, as in KServe). concurrency and rps are per-pod custom
metrics: the HPA reads them through a metrics adapter, which serves them from
what the model server exports (docs/autoscaling.md ships prometheus-adapter's
rules). The operator does not import the model server, so the names live here;
tests/unit/test_autoscaling_metrics.py checks them against the server's
/metrics and against the shipped adapter rules.

KServe's autoScaling, when set, replaces scaleMetric and scaleTarget: its
Resource metrics (cpu, memory) become the HPA's, each with its target type
(Utilization or AverageValue) kept, and its behavior the HPA's behavior. Its
External metrics (a Prometheus query) are KEDA's (`scaled_object.py`): an HPA
cannot run a query, and `scaling_mode` says so in FieldsSupported.

During a canary each track has its own HPA, and its bounds scale with the
track's share of the traffic: minReplicas and maxReplicas times the share,
rounded up, at least one. The canary's share is the requested percent from the
start (so it can become Ready); the stable track keeps its full bounds until
the canary is Ready and takes its share.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.components import ComponentSpec, MetricTarget, ResourceMetricSource
from kubeserve.planning.rollout import share

DEFAULT_CPU_TARGET = 80
IN_FLIGHT_METRIC = "kubeserve_requests_in_flight"
"""The model server's gauge of requests being served, which the adapter serves under its own name."""
REQUESTS_COUNTER = "kubeserve_requests_total"
"""The model server's counter of requests served; the adapter serves its per-second rate as RPS_METRIC."""
RPS_METRIC = "kubeserve_requests_per_second"
"""Requests per second per pod: the rate of REQUESTS_COUNTER over a minute, as the adapter serves it."""
POD_METRICS = {"concurrency": IN_FLIGHT_METRIC, "rps": RPS_METRIC}


def min_replicas(spec: ComponentSpec) -> int:
    """KServe floors minReplicas at 1 in raw mode: there is no scale to zero without a proxy."""
    return max(spec.min_replicas, 1)


def wants_autoscaler(spec: ComponentSpec) -> bool:
    return spec.max_replicas is not None and spec.max_replicas > min_replicas(spec)


def _pod_target(spec: ComponentSpec, metric: str) -> int:
    """A per-pod target: scaleTarget; else, for concurrency, the replica's limit (containerConcurrency):
    replicas are added when the average one is full; else 1."""
    concurrency = spec.container_concurrency if metric == "concurrency" else None
    return spec.scale_target or concurrency or 1


def target_value(target: MetricTarget) -> int | str:
    """The target's one value, of the field its type names (the schema makes sure it is set)."""
    value = {
        "Utilization": target.average_utilization,
        "AverageValue": target.average_value,
        "Value": target.value,
    }[target.type]
    assert value is not None
    return value


def _resource_metric(source: ResourceMetricSource) -> dict[str, Any]:
    target = source.target
    key = "averageUtilization" if target.type == "Utilization" else "averageValue"
    return {
        "type": "Resource",
        "resource": {"name": source.name, "target": {"type": target.type, key: target_value(target)}},
    }


def _metrics(spec: ComponentSpec) -> list[dict[str, Any]]:
    """autoScaling's Resource metrics; without any, the one scaleMetric names."""
    listed = (spec.auto_scaling.metrics if spec.auto_scaling else None) or []
    resources = [_resource_metric(m.resource) for m in listed if m.resource is not None]
    return resources or [_metric(spec)]


def _metric(spec: ComponentSpec) -> dict[str, Any]:
    metric = spec.scale_metric or "cpu"
    if metric in POD_METRICS:
        return {
            "type": "Pods",
            "pods": {
                "metric": {"name": POD_METRICS[metric]},
                "target": {"type": "AverageValue", "averageValue": str(_pod_target(spec, metric))},
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
    hpa: dict[str, Any] = {
        "scaleTargetRef": scale_target_ref(target_name),
        "minReplicas": low,
        "maxReplicas": high,
        "metrics": _metrics(spec),
    }
    if spec.auto_scaling and spec.auto_scaling.behavior:
        hpa["behavior"] = spec.auto_scaling.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": hpa,
    }


def scale_target_ref(target_name: str) -> dict[str, str]:
    """The Deployment an autoscaler (an HPA or a ScaledObject) scales."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_name}
