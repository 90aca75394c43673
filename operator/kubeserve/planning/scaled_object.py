"""The KEDA ScaledObject of a component, under the `keda` autoscaler class, when it may scale.

Built as KServe builds it: each autoScaling metric is one trigger (cpu and
memory with their target type as KEDA's metricType; an External query as a
trigger of its backend, with serverAddress, query and the target value as its
threshold, which KEDA compares per replica, as in KServe). Without autoScaling
metrics, scaleMetric and scaleTarget give one cpu or memory trigger (cpu at 80%
by default). autoScaling.keda's options (polling, cooldowns, idle replicas,
fallback) and autoScaling.behavior pass through.

KEDA then owns the Deployment's replica count (through an HPA of its own,
which it names `keda-hpa-<name>` and owns), so Kubeserve leaves `replicas` out
of the Deployment, as it does under its own HPA. During a canary each track
has its own ScaledObject, with the bounds (and fallback replicas) of its
share of the traffic, as with HPAs.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.components import ComponentSpec, ExternalMetricSource, ResourceMetricSource
from kubeserve.planning.autoscaler import DEFAULT_CPU_TARGET, scale_target_ref, share_bounds, target_value
from kubeserve.planning.rollout import share

API_VERSION = "keda.sh/v1alpha1"
RESOURCE_METRICS = ("cpu", "memory")
"""scaleMetric values KEDA reads without a metrics backend; concurrency and rps need a Prometheus query."""
GRAPHITE_QUERY_TIME = "-5minutes"
"""How far back KEDA's graphite scaler reads (its required `queryTime`; KServe's API has no field for
it): the latest value of the last five minutes, a few of KEDA's polling intervals."""


def _resource_trigger(source: ResourceMetricSource) -> dict[str, Any]:
    return {
        "type": source.name,
        "metricType": source.target.type,
        "metadata": {"value": str(target_value(source.target))},
    }


def _external_trigger(source: ExternalMetricSource) -> dict[str, Any]:
    metric = source.metric
    metadata = {
        "serverAddress": metric.server_address,
        "query": metric.query,
        "threshold": str(target_value(source.target)),
    }
    if metric.namespace:
        metadata["namespace"] = metric.namespace
    if metric.backend == "graphite":
        metadata["queryTime"] = GRAPHITE_QUERY_TIME
    trigger: dict[str, Any] = {"type": metric.backend, "metadata": metadata}
    auth = source.authentication_ref
    if auth is not None:
        if auth.auth_modes:
            metadata["authModes"] = auth.auth_modes
        trigger["authenticationRef"] = {"name": auth.authentication_ref.name}
    return trigger


def triggers(spec: ComponentSpec) -> list[dict[str, Any]]:
    """One trigger per autoScaling metric; without any, scaleMetric's (cpu or memory, cpu by default:
    `scaling_mode` says when concurrency or rps is asked for instead)."""
    listed = (spec.auto_scaling.metrics if spec.auto_scaling else None) or []
    found = []
    for metric in listed:
        if metric.resource is not None:
            trigger = _resource_trigger(metric.resource)
        elif metric.external is not None:
            trigger = _external_trigger(metric.external)
        else:
            continue
        if metric.name:
            trigger["name"] = metric.name
        if metric.use_cached_metrics:
            trigger["useCachedMetrics"] = True
        found.append(trigger)
    if found:
        return found
    resource = spec.scale_metric if spec.scale_metric in RESOURCE_METRICS else "cpu"
    value = spec.scale_target or DEFAULT_CPU_TARGET
    return [{"type": resource, "metricType": "Utilization", "metadata": {"value": str(value)}}]


def build_scaled_object(
    metadata: dict[str, Any], target_name: str, spec: ComponentSpec, percent: int = 100
) -> dict[str, Any]:
    """The ScaledObject of one track, which serves `percent` of the component's traffic."""
    low, high = share_bounds(spec, percent)
    scaled: dict[str, Any] = {
        "scaleTargetRef": scale_target_ref(target_name),
        "minReplicaCount": low,
        "maxReplicaCount": high,
        "triggers": triggers(spec),
    }
    options = spec.auto_scaling.keda if spec.auto_scaling else None
    if options is not None:
        for key, value in (
            ("pollingInterval", options.polling_interval),
            ("cooldownPeriod", options.cooldown_period),
            ("initialCooldownPeriod", options.initial_cooldown_period),
            ("idleReplicaCount", options.idle_replica_count),
        ):
            if value is not None:
                scaled[key] = value
        if options.fallback is not None:
            scaled["fallback"] = {
                "failureThreshold": options.fallback.failure_threshold,
                "replicas": share(options.fallback.replicas, percent) if options.fallback.replicas else 0,
                "behavior": options.fallback.behavior,
            }
    if spec.auto_scaling and spec.auto_scaling.behavior:
        scaled["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": spec.auto_scaling.behavior}}
    return {"apiVersion": API_VERSION, "kind": "ScaledObject", "metadata": metadata, "spec": scaled}
