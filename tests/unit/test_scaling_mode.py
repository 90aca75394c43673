"""KServe's deploymentMode and autoscalerClass annotations, and minReplicas 0: acted on or said."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.planning.plan import PlanningError, plan_service
from kubeserve.planning.scaling_mode import AUTOSCALER_CLASS, DEPLOYMENT_MODE
from tests.unit.planning_inputs import SKLEARN, inputs, service

SCALING = {"predictor": {**SKLEARN["predictor"], "minReplicas": 2, "maxReplicas": 4}}


def _kinds_and_replicas(annotations: dict[str, str], spec: dict[str, Any] = SCALING) -> dict[str, Any]:
    plan = plan_service(service(spec, annotations=annotations), inputs(keda=True))
    return {o["kind"]: o["spec"].get("replicas", "unset") for o in plan.objects}


def _notes(annotations: dict[str, str], spec: dict[str, Any] = SCALING) -> tuple[str, ...]:
    return plan_service(service(spec, annotations=annotations), inputs()).components["predictor"].unsupported


@pytest.mark.parametrize(
    ("autoscaler", "objects"),
    [
        (None, {"Deployment": "unset", "Service": "unset", "HorizontalPodAutoscaler": "unset"}),
        ("hpa", {"Deployment": "unset", "Service": "unset", "HorizontalPodAutoscaler": "unset"}),
        ("keda", {"Deployment": "unset", "Service": "unset", "ScaledObject": "unset"}),
        ("none", {"Deployment": 2, "Service": "unset"}),
        ("external", {"Deployment": "unset", "Service": "unset"}),
    ],
)
def test_the_autoscaler_class_decides_who_owns_the_replica_count(
    autoscaler: str | None, objects: dict[str, Any]
) -> None:
    annotations = {AUTOSCALER_CLASS: autoscaler} if autoscaler else {}
    assert _kinds_and_replicas(annotations) == objects


def test_a_fixed_component_under_external_leaves_replicas_to_their_owner() -> None:
    fixed = {"predictor": {**SKLEARN["predictor"], "minReplicas": 3}}
    assert _kinds_and_replicas({}, fixed) == {"Deployment": 3, "Service": "unset"}
    assert _kinds_and_replicas({AUTOSCALER_CLASS: "external"}, fixed) == {
        "Deployment": "unset",
        "Service": "unset",
    }


def test_raw_modes_are_honoured_silently_and_others_are_said() -> None:
    assert _notes({DEPLOYMENT_MODE: "RawDeployment"}) == ()
    assert _notes({DEPLOYMENT_MODE: "Standard"}) == ()
    (note,) = _notes({DEPLOYMENT_MODE: "Serverless"})
    assert note.startswith(f"metadata.annotations[{DEPLOYMENT_MODE}]=Serverless: ") and "Standard" in note


def test_keda_without_keda_installed_is_a_clear_refusal_naming_the_annotation() -> None:
    with pytest.raises(PlanningError) as refused:
        plan_service(service(SCALING, annotations={AUTOSCALER_CLASS: "keda"}), inputs(keda=False))
    assert refused.value.reason == "KedaNotInstalled"
    assert f"metadata.annotations[{AUTOSCALER_CLASS}]=keda: KEDA is not installed" in refused.value.message
    fixed = {"predictor": {**SKLEARN["predictor"], "minReplicas": 2}}
    plan = plan_service(service(fixed, annotations={AUTOSCALER_CLASS: "keda"}), inputs(keda=False))
    assert [o["kind"] for o in plan.objects] == ["Service", "Deployment"], "nothing to scale, nothing needed"


def test_min_replicas_zero_is_said_not_silently_floored() -> None:
    idle = {"predictor": {**SKLEARN["predictor"], "minReplicas": 0, "maxReplicas": 3}}
    (note,) = _notes({}, idle)
    assert note.startswith("spec.predictor.minReplicas 0: scale to zero is off in this operator's config")
    assert "scaleToZero.enabled turns it on" in note
    assert _notes({AUTOSCALER_CLASS: "external"}, idle) == (), "external owns the count, zero included"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        (AUTOSCALER_CLASS, "kpa", "hpa, keda, external, none"),
        (DEPLOYMENT_MODE, "raw", "RawDeployment, Standard, Serverless, Knative, ModelMesh"),
    ],
)
def test_an_unknown_annotation_value_is_refused_naming_what_is_allowed(
    key: str, value: str, allowed: str
) -> None:
    with pytest.raises(PlanningError) as refused:
        plan_service(service(SCALING, annotations={key: value}), inputs())
    assert refused.value.reason == "InvalidAnnotation"
    assert f"metadata.annotations[{key}] is '{value}': use one of {allowed}" in str(refused.value)
