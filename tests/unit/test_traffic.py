"""Traffic backends: which one is in effect, and the routes, per-track Services and mirroring they plan."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.api.inference_service import MAX_NAME_LENGTH
from kubeserve.config import OperatorConfig
from kubeserve.planning.plan import Plan, PlanningError, plan_service
from kubeserve.planning.rollout import CANARY, STABLE, TrackState
from kubeserve.planning.traffic import (
    MIRROR_ANNOTATION,
    Backend,
    effective_backend,
    mirror_percent,
    track_service_name,
)
from tests.unit.planning_inputs import SKLEARN, inputs, service


@pytest.mark.parametrize(
    ("configured", "gateway", "istio", "expected"),
    [
        ("auto", True, True, "gateway"),
        ("auto", False, True, "istio"),
        ("auto", False, False, "service"),
        ("istio", True, True, "istio"),
        ("gateway", False, True, "service"),
        ("istio", True, False, "service"),
        ("service", True, True, "service"),
    ],
)
def test_effective_backend(configured: str, gateway: bool, istio: bool, expected: str) -> None:
    assert effective_backend(configured, gateway, istio) == expected


def with_env(version: int, percent: int | None = None) -> dict[str, Any]:
    model = {**SKLEARN["predictor"]["model"], "env": [{"name": "VERSION", "value": str(version)}]}
    predictor: dict[str, Any] = {"model": model}
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    return {"predictor": predictor}


def canary_plan(
    backend: Backend, canary_ready: bool, annotations: dict[str, str] | None = None, percent: int = 20
) -> Plan:
    """v2 as a canary of v1, its canary track Ready or not."""
    v1 = plan_service(service(with_env(1)), inputs(backend=backend))
    stable_deployment = next(o for o in v1.objects if o["kind"] == "Deployment")
    stable = TrackState(v1.components["predictor"].revision, True, stable_deployment["spec"]["template"])
    isvc = service(with_env(2, percent), annotations=annotations or {})
    waiting = plan_service(isvc, inputs(backend=backend, tracks={("predictor", STABLE): stable}))
    canary = TrackState(waiting.components["predictor"].revision, canary_ready, {})
    return plan_service(
        isvc, inputs(backend=backend, tracks={("predictor", STABLE): stable, ("predictor", CANARY): canary})
    )


def traffic_of(plan: Plan, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in plan.traffic if o["kind"] == kind)
    return found


def test_the_service_backend_plans_no_route_and_keeps_the_cluster_url() -> None:
    plan = canary_plan("service", canary_ready=True)
    assert plan.traffic == () and plan.ingress_url is None
    assert {o["kind"] for o in plan.objects} == {"Deployment", "Service"}


def test_gateway_route_is_attached_to_the_configured_gateway_with_one_service_per_track() -> None:
    plan = plan_service(service(SKLEARN), inputs(backend="gateway"))
    route = traffic_of(plan, "HTTPRoute")
    assert route["metadata"]["name"] == "iris"
    assert route["metadata"]["ownerReferences"][0]["name"] == "iris"
    assert route["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": "kubeserve-system",
                "name": "kubeserve-gateway",
            }
        ],
        "hostnames": ["iris-ml.example.com"],
        "rules": [{"backendRefs": [{"name": "iris-predictor-stable", "port": 80, "weight": 100}]}],
    }
    assert plan.ingress_url == "http://iris-ml.example.com"
    services = [o for o in plan.traffic if o["kind"] == "Service"]
    assert [
        (s["metadata"]["name"], s["spec"]["selector"]["serving.kubeserve.io/track"]) for s in services
    ] == [("iris-predictor-stable", STABLE)]


@pytest.mark.parametrize(("ready", "weights"), [(False, [100, 0]), (True, [80, 20])])
def test_gateway_weights_give_the_canary_its_share_only_once_ready(ready: bool, weights: list[int]) -> None:
    route = traffic_of(canary_plan("gateway", ready), "HTTPRoute")
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == list(
        zip(["iris-predictor-stable", "iris-predictor-canary"], weights, strict=True)
    )


def test_mirroring_copies_traffic_to_a_ready_canary() -> None:
    annotations = {MIRROR_ANNOTATION: "25"}
    assert (
        "filters"
        not in traffic_of(canary_plan("gateway", False, annotations), "HTTPRoute")["spec"]["rules"][0]
    )
    rule = traffic_of(canary_plan("gateway", True, annotations), "HTTPRoute")["spec"]["rules"][0]
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "iris-predictor-canary", "port": 80}, "percent": 25},
        }
    ]


@pytest.mark.parametrize(
    "value",
    ["101", "-1", "half", "", "²", "\u0665\u0660", " 5", "5\n", "+5", "1_0", "1" * 5000],
    ids=[
        "over",
        "negative",
        "word",
        "empty",
        "superscript",
        "arabic-indic",
        "space",
        "newline",
        "sign",
        "underscore",
        "past-int-limit",
    ],
)
def test_a_bad_mirror_annotation_is_a_planning_error(value: str) -> None:
    with pytest.raises(PlanningError) as refused:
        plan_service(service(SKLEARN, annotations={MIRROR_ANNOTATION: value}), inputs(backend="gateway"))
    assert refused.value.reason == "InvalidMirrorPercent"
    assert MIRROR_ANNOTATION in refused.value.message
    assert "from 0 to 100 in digits 0-9" in refused.value.message
    assert len(refused.value.message) < 200, "a long value is shortened"


@pytest.mark.parametrize(("value", "percent"), [("0", 0), ("7", 7), ("100", 100)])
def test_a_mirror_annotation_is_read_from_digits(value: str, percent: int) -> None:
    assert mirror_percent({MIRROR_ANNOTATION: value}) == percent


def test_istio_virtual_service_weighs_and_mirrors_the_same_split() -> None:
    plan = canary_plan("istio", True, {MIRROR_ANNOTATION: "100"})
    spec = traffic_of(plan, "VirtualService")["spec"]
    assert spec["hosts"] == ["iris-ml.example.com"]
    assert spec["gateways"] == ["kubeserve-system/kubeserve-gateway"]
    http = spec["http"][0]
    assert [(r["destination"]["host"], r["weight"]) for r in http["route"]] == [
        ("iris-predictor-stable.ml.svc.cluster.local", 80),
        ("iris-predictor-canary.ml.svc.cluster.local", 20),
    ]
    assert http["mirror"] == {"host": "iris-predictor-canary.ml.svc.cluster.local", "port": {"number": 80}}
    assert http["mirrorPercentage"] == {"value": 100.0}


def test_the_transformer_is_the_routed_entry_and_the_domain_comes_from_config() -> None:
    spec = {**SKLEARN, "transformer": {"containers": [{"name": "t", "image": "t:1"}]}}
    config = OperatorConfig.model_validate({"ingress": {"domain": "models.internal"}})
    plan = plan_service(service(spec), inputs(backend="gateway", config=config))
    route = traffic_of(plan, "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "iris-transformer-stable"
    assert route["metadata"]["labels"]["component"] == "transformer"
    assert plan.ingress_url == "http://iris-ml.models.internal"


def test_the_longest_name_the_schema_allows_gives_children_that_are_dns_labels() -> None:
    """A Service name is a DNS label (63 characters); the longest child is a transformer's canary track."""
    name = "m" * MAX_NAME_LENGTH
    spec = {**SKLEARN, "transformer": {"containers": [{"name": "tx", "image": "tx:1"}]}}
    plan = plan_service(service(spec, name=name), inputs(backend="gateway"))
    names = [o["metadata"]["name"] for o in plan.objects]
    assert max(len(n) for n in names) <= 63
    assert len(track_service_name(f"{name}-transformer", CANARY)) == 63
