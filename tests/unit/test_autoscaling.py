"""KServe's autoScaling field: refused when malformed (by the models and the CRD's CEL rules alike, naming
autoScaling), HPA metrics under the hpa class, a KEDA ScaledObject under keda, and notes for the rest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve.api import InferenceService
from kubeserve.planning.plan import plan_service
from kubeserve.planning.rollout import STABLE, TrackState
from kubeserve.planning.scaling_mode import AUTOSCALER_CLASS
from kubeserve.status.announcements import announcements
from kubeserve.status.compute import Observed, compute_status
from tests.unit.crd_schema import cel_failures, requires_cel, schema
from tests.unit.planning_inputs import SKLEARN, inputs, service

CPU_50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}
MEMORY_2GI = {
    "type": "Resource",
    "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "2Gi"}},
}
PROMETHEUS = {
    "type": "External",
    "external": {
        "metric": {
            "backend": "prometheus",
            "serverAddress": "http://prometheus.monitoring:9090",
            "query": "sum(vllm:num_requests_running)",
        },
        "target": {"type": "Value", "value": "2"},
    },
}
KEDA = {AUTOSCALER_CLASS: "keda"}


def predictor(**fields: Any) -> dict[str, Any]:
    return {"predictor": {**SKLEARN["predictor"], "minReplicas": 1, "maxReplicas": 5, **fields}}


def body(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": predictor(**fields),
    }


def metrics(*listed: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"autoScaling": {"metrics": list(listed), **more}}


def with_target(metric: dict[str, Any], **target: Any) -> dict[str, Any]:
    kind = "resource" if metric["type"] == "Resource" else "external"
    return {**metric, kind: {**metric[kind], "target": target}}


CASES = [
    ("cpu utilization", body(**metrics(CPU_50)), None),
    ("memory average value", body(**metrics(MEMORY_2GI)), None),
    ("prometheus query", body(**metrics(PROMETHEUS)), None),
    ("all three", body(**metrics(CPU_50, MEMORY_2GI, PROMETHEUS)), None),
    ("with scaleMetric", body(scaleMetric="cpu", **metrics(CPU_50)), "autoScaling replaces"),
    ("with scaleTarget", body(scaleTarget=60, **metrics(CPU_50)), "autoScaling replaces"),
    ("utilization without a value", body(**metrics(with_target(CPU_50, type="Utilization"))), "autoScaling"),
    ("cpu by total value", body(**metrics(with_target(CPU_50, type="Value", value="2"))), "autoScaling"),
    (
        "query by utilization",
        body(**metrics(with_target(PROMETHEUS, type="Utilization", averageUtilization=5))),
        "autoScaling",
    ),
    (
        "threshold a quantity",
        body(**metrics(with_target(PROMETHEUS, type="Value", value="500m"))),
        "autoScaling",
    ),
    ("threshold an integer", body(**metrics(with_target(PROMETHEUS, type="Value", value=3))), None),
    ("threshold decimal", body(**metrics(with_target(PROMETHEUS, type="Value", value="100.5"))), None),
    (
        "Resource without resource",
        body(**metrics({"type": "Resource", "external": PROMETHEUS["external"]})),
        "autoScaling.metrics",
    ),
    (
        "named and cached query",
        body(**metrics({**PROMETHEUS, "name": "load", "useCachedMetrics": True})),
        None,
    ),
    ("cached cpu", body(**metrics({**CPU_50, "useCachedMetrics": True})), "useCachedMetrics"),
    (
        "PodMetric",
        body(**metrics({"type": "PodMetric", "podmetric": {"metric": {"query": "q"}}})),
        "PodMetric",
    ),
    (
        "fallback with a query",
        body(**metrics(PROMETHEUS, keda={"fallback": {"failureThreshold": 3, "replicas": 2}})),
        None,
    ),
    ("idle below min", body(minReplicas=2, **metrics(PROMETHEUS, keda={"idleReplicaCount": 1})), None),
    (
        "idle at min",
        body(minReplicas=2, **metrics(PROMETHEUS, keda={"idleReplicaCount": 2})),
        "idleReplicaCount",
    ),
    (
        "idle with min 0",
        body(minReplicas=0, **metrics(PROMETHEUS, keda={"idleReplicaCount": 0})),
        "idleReplicaCount",
    ),
    (
        "fallback with cpu only",
        body(**metrics(CPU_50, keda={"fallback": {"failureThreshold": 3, "replicas": 2}})),
        "autoScaling.keda.fallback",
    ),
]


@pytest.mark.parametrize(("case", "obj", "text"), CASES, ids=[c[0] for c in CASES])
def test_the_models_refuse_a_malformed_auto_scaling_naming_it(
    case: str, obj: dict[str, Any], text: str | None
) -> None:
    if text is None:
        InferenceService.model_validate(obj)
    else:
        with pytest.raises(ValidationError, match=text):
            InferenceService.model_validate(obj)


@requires_cel
@pytest.mark.parametrize(("case", "obj", "text"), CASES, ids=[c[0] for c in CASES])
def test_the_crd_rules_agree(case: str, obj: dict[str, Any], text: str | None) -> None:
    failures = cel_failures(obj, schema("InferenceService"))
    if text is None:
        assert failures == []
    else:
        assert failures, "the CRD accepts what the models refuse"
        assert all("autoScaling" in failure and text in failure for failure in failures), failures


def _objects(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    plan = plan_service(service(spec, annotations=annotations or {}), inputs(keda=True))
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in plan.objects}


def _notes(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> tuple[str, ...]:
    plan = plan_service(service(spec, annotations=annotations or {}), inputs(keda=True))
    return plan.components["predictor"].unsupported


def test_the_hpa_takes_the_resource_metrics_with_their_target_types() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    hpa = _objects(predictor(**metrics(CPU_50, MEMORY_2GI, behavior=behavior)))[
        "HorizontalPodAutoscaler/iris-predictor"
    ]
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
        },
        {
            "type": "Resource",
            "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "2Gi"}},
        },
    ]
    assert hpa["spec"]["behavior"] == behavior
    assert _notes(predictor(**metrics(CPU_50))) == ()


def test_a_query_the_hpa_cannot_run_is_named_not_dropped() -> None:
    objects = _objects(predictor(**metrics(CPU_50, PROMETHEUS)))
    assert [
        m["resource"]["name"] for m in objects["HorizontalPodAutoscaler/iris-predictor"]["spec"]["metrics"]
    ] == ["cpu"]
    (note,) = _notes(predictor(**metrics(CPU_50, PROMETHEUS)))
    assert note.startswith("spec.predictor.autoScaling.metrics[1] (prometheus query): an HPA cannot run")
    only_query = _objects(predictor(**metrics(PROMETHEUS)))["HorizontalPodAutoscaler/iris-predictor"]
    assert only_query["spec"]["metrics"][0]["resource"]["name"] == "cpu", "the default metric meanwhile"


def test_keda_options_outside_keda_and_autoscaling_without_an_autoscaler_are_named() -> None:
    (note,) = _notes(predictor(**metrics(CPU_50, keda={"pollingInterval": 10})))
    assert note.startswith("spec.predictor.autoScaling.keda: ")
    for autoscaler in ("none", "external"):
        (note,) = _notes(predictor(**metrics(CPU_50)), {AUTOSCALER_CLASS: autoscaler})
        assert note == f"spec.predictor.autoScaling: the {autoscaler} autoscaler class creates no autoscaler"


def test_auto_scaling_with_nothing_to_scale_is_named() -> None:
    fixed = {"predictor": {**SKLEARN["predictor"], "minReplicas": 2, "autoScaling": {"metrics": [CPU_50]}}}
    for class_annotation in ({}, KEDA):
        (note,) = _notes(fixed, class_annotation)
        assert (
            note
            == "spec.predictor.autoScaling: maxReplicas is not above minReplicas, so nothing scales on it"
        )


def test_keda_builds_a_scaled_object_from_auto_scaling_and_leaves_replicas_to_it() -> None:
    options = {
        "pollingInterval": 15,
        "cooldownPeriod": 120,
        "fallback": {"failureThreshold": 3, "replicas": 2},
    }
    auth = {"authenticationRef": {"name": "prometheus-auth"}, "authModes": "bearer"}
    query = {
        **PROMETHEUS,
        "name": "load",
        "useCachedMetrics": True,
        "external": {**PROMETHEUS["external"], "authenticationRef": auth},
    }
    objects = _objects(predictor(**metrics(CPU_50, MEMORY_2GI, query, keda=options)), KEDA)
    assert set(objects) == {
        "Service/iris-predictor",
        "Deployment/iris-predictor",
        "ScaledObject/iris-predictor",
    }
    assert "replicas" not in objects["Deployment/iris-predictor"]["spec"], "KEDA owns the count"
    scaled = objects["ScaledObject/iris-predictor"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-predictor"},
        "minReplicaCount": 1,
        "maxReplicaCount": 5,
        "pollingInterval": 15,
        "cooldownPeriod": 120,
        "fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "static"},
        "triggers": [
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
            {"type": "memory", "metricType": "AverageValue", "metadata": {"value": "2Gi"}},
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus.monitoring:9090",
                    "query": "sum(vllm:num_requests_running)",
                    "threshold": "2",
                    "authModes": "bearer",
                },
                "authenticationRef": {"name": "prometheus-auth"},
                "name": "load",
                "useCachedMetrics": True,
            },
        ],
    }
    assert _notes(predictor(**metrics(CPU_50)), KEDA) == ()


def test_a_graphite_query_gets_the_query_time_kedas_scaler_requires() -> None:
    metric = {**PROMETHEUS["external"]["metric"], "backend": "graphite", "query": "stats.requests"}  # type: ignore[index]
    graphite = {**PROMETHEUS, "external": {**PROMETHEUS["external"], "metric": metric}}
    scaled = _objects(predictor(**metrics(graphite)), KEDA)["ScaledObject/iris-predictor"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "graphite"
    assert trigger["metadata"] == {
        "serverAddress": "http://prometheus.monitoring:9090",
        "query": "stats.requests",
        "threshold": "2",
        "queryTime": "-5minutes",
    }


@pytest.mark.parametrize(
    ("fields", "trigger"),
    [
        ({}, {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}),
        (
            {"scaleMetric": "memory", "scaleTarget": 70},
            {"type": "memory", "metricType": "Utilization", "metadata": {"value": "70"}},
        ),
        (
            {"scaleMetric": "rps", "scaleTarget": 5},
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "5"}},
        ),
    ],
)
def test_keda_without_auto_scaling_takes_scale_metric_and_scale_target(
    fields: dict[str, Any], trigger: dict[str, Any]
) -> None:
    scaled = _objects(predictor(**fields), KEDA)["ScaledObject/iris-predictor"]
    assert scaled["spec"]["triggers"] == [trigger]


def test_concurrency_or_rps_under_keda_is_named() -> None:
    (note,) = _notes(predictor(scaleMetric="concurrency"), KEDA)
    assert note.startswith(
        "spec.predictor.scaleMetric concurrency: KEDA reads it only through a metrics backend"
    )


def test_each_canary_track_gets_a_scaled_object_of_its_share() -> None:
    spec = predictor(
        maxReplicas=10,
        canaryTrafficPercent=20,
        **metrics(PROMETHEUS, keda={"fallback": {"failureThreshold": 1, "replicas": 5}}),
    )
    old = {"metadata": {"labels": {}}, "spec": {"containers": []}}
    tracks = {("predictor", STABLE): TrackState("iris-predictor-00000000", True, old)}
    plan = plan_service(service(spec, annotations=KEDA), inputs(keda=True, tracks=tracks))
    scaled = {o["metadata"]["name"]: o["spec"] for o in plan.objects if o["kind"] == "ScaledObject"}
    assert set(scaled) == {"iris-predictor", "iris-predictor-canary"}
    assert (
        scaled["iris-predictor-canary"]["minReplicaCount"],
        scaled["iris-predictor-canary"]["maxReplicaCount"],
    ) == (1, 2)
    assert scaled["iris-predictor-canary"]["fallback"]["replicas"] == 1
    assert scaled["iris-predictor-canary"]["scaleTargetRef"]["name"] == "iris-predictor-canary"


def keda_status(ready: dict[str, Any] | None) -> dict[str, Any]:
    """The conditions of a ScaledObject as KEDA writes them (Ready, beside Active and Fallback)."""
    active = {"type": "Active", "status": "False", "reason": "ScalerNotActive"}
    return {"status": {"conditions": [active, *([ready] if ready else [])]}}


def autoscaler_condition(scaled_objects: dict[str, Any]) -> dict[str, Any]:
    isvc = service(predictor(), annotations=KEDA)
    plan = plan_service(isvc, inputs(keda=True))
    status = compute_status(isvc, plan, None, Observed({}, [], scaled_objects), "2026-12-03T10:00:00Z")
    (condition,) = [c for c in status["conditions"] if c["type"] == "AutoscalerReady"]
    return condition


def test_a_trigger_keda_refuses_is_said_in_a_condition_with_kedas_reason_and_message() -> None:
    refused = {
        "type": "Ready",
        "status": "False",
        "reason": "ScaledObjectCheckFailed",
        "message": "Triggers defined in ScaledObject are not correct",
    }
    condition = autoscaler_condition({"iris-predictor": keda_status(refused)})
    assert (condition["status"], condition["reason"]) == ("False", "ScaledObjectCheckFailed")
    assert condition["message"] == (
        "KEDA refuses ScaledObject iris-predictor: Triggers defined in ScaledObject are not correct"
    )
    announced = announcements({}, {"conditions": [condition]})
    assert [(a.type, a.reason) for a in announced] == [("Warning", "ScaledObjectCheckFailed")]


def test_kedas_verdict_is_pending_until_it_writes_one_and_a_reason_out_of_shape_is_replaced() -> None:
    assert autoscaler_condition({})["status"] == "Unknown"
    assert autoscaler_condition({"iris-predictor": keda_status(None)})["reason"] == "KedaPending"
    ok = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"}
    assert autoscaler_condition({"iris-predictor": keda_status(ok)})["status"] == "True"
    odd = {"type": "Ready", "status": "False", "reason": "not a reason!", "message": "x" * 5000}
    condition = autoscaler_condition({"iris-predictor": keda_status(odd)})
    assert condition["reason"] == "ScaledObjectNotReady" and len(condition["message"]) == 1024


def test_no_scaled_object_means_no_autoscaler_condition() -> None:
    isvc = service(predictor())
    status = compute_status(
        isvc, plan_service(isvc, inputs()), None, Observed({}, []), "2026-12-03T10:00:00Z"
    )
    assert "AutoscalerReady" not in {c["type"] for c in status["conditions"]}
