"""Scale to zero's planning and status: the Service routes to Ready pods, else to the activator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kubeserve.apply.client import ApiError
from kubeserve.apply.resources import Resource
from kubeserve.cache.observed import ClusterView
from kubeserve.cache.watches import Follower, Scope, _selected, activator_slices
from kubeserve.config import OperatorConfig, ScaleToZeroConfig, parse_config
from kubeserve.planning.plan import Plan, PlanningError, plan_service
from kubeserve.planning.rollout import STABLE, TrackState
from kubeserve.reconciler import Reconciler
from kubeserve.status.compute import Observed, compute_status
from tests.unit.planning_inputs import SKLEARN, inputs, service

ON = OperatorConfig(scale_to_zero=ScaleToZeroConfig(enabled=True))
IDLE = {"predictor": {**SKLEARN["predictor"], "minReplicas": 0, "maxReplicas": 3}}
NOW = "2026-12-03T08:00:00Z"
WINDOW = "serving.kubeserve.io/scale-to-zero-window"


def endpoint_slice(
    service_name: str, ports: list[dict[str, Any]], *endpoints: tuple[str, bool | None], name: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or f"{service_name}-x1",
            "namespace": "ml",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [address], "conditions": {} if ready is None else {"ready": ready}}
            for address, ready in endpoints
        ],
        "ports": ports,
    }


ACTIVATOR = endpoint_slice(
    "kubeserve-activator",
    [{"name": "http", "port": 8012, "protocol": "TCP"}, {"name": "metrics", "port": 9090}],
    ("10.240.7.7", True),
    ("10.240.7.8", False),
)
POD_PORTS = [
    {"name": "http", "port": 8080, "protocol": "TCP"},
    {"name": "h2c", "port": 8081, "protocol": "TCP"},
]
"""The sklearn runtime's container ports, named as the Service's ports (http is the Service's port 80)."""


ACTIVATOR_WITH_GRPC = endpoint_slice(
    "kubeserve-activator",
    [{"name": "http", "port": 8012, "protocol": "TCP"}, {"name": "grpc", "port": 8013, "protocol": "TCP"}],
    ("10.240.7.7", True),
)


def planned(config: OperatorConfig = ON, **overrides: Any) -> Plan:
    return plan_service(service(IDLE), inputs(config=config, **overrides))


def by_kind_and_name(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in plan.objects}


def test_off_by_default_min_replicas_zero_keeps_one_replica_and_says_how_to_turn_it_on() -> None:
    plan = planned(OperatorConfig(), activator_slices=[ACTIVATOR])
    objects = by_kind_and_name(plan)
    assert sorted(objects) == [
        ("Deployment", "iris-predictor"),
        ("HorizontalPodAutoscaler", "iris-predictor"),
        ("Service", "iris-predictor"),
    ]
    assert objects[("Service", "iris-predictor")]["spec"]["selector"]
    assert plan.components["predictor"].routing is None
    (note,) = plan.components["predictor"].unsupported
    assert "scaleToZero.enabled turns it on" in note


def test_idle_component_routes_its_selectorless_service_to_the_activator() -> None:
    plan = planned(activator_slices=[ACTIVATOR])
    objects = by_kind_and_name(plan)
    public = objects[("Service", "iris-predictor")]
    assert "selector" not in public["spec"]
    assert public["metadata"]["labels"]["serving.kubeserve.io/scale-to-zero"] == "true"
    assert public["metadata"]["annotations"] == {
        "serving.kubeserve.io/deployment": "iris-predictor",
        "serving.kubeserve.io/pods-service": "iris-predictor-pods",
        "serving.kubeserve.io/idle-window-seconds": "300",
        "serving.kubeserve.io/readiness-probe": "8080:/v2/health/ready",
    }, "the runtime's readiness probe, for the activator to ask while a pod starts"
    assert public["metadata"]["labels"]["serving.kubeserve.io/inferenceservice"] == "iris", "woken together"
    pods = objects[("Service", "iris-predictor-pods")]
    assert pods["spec"]["clusterIP"] == "None"
    assert pods["spec"]["selector"] == {
        "serving.kubeserve.io/inferenceservice": "iris",
        "component": "predictor",
    }
    assert pods["spec"]["ports"] == public["spec"]["ports"]
    routing = objects[("EndpointSlice", "iris-predictor-routing")]
    assert routing["metadata"]["labels"]["kubernetes.io/service-name"] == "iris-predictor"
    assert routing["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "serving.kubeserve.io"
    assert routing["addressType"] == "IPv4"
    assert routing["endpoints"] == [{"addresses": ["10.240.7.7"], "conditions": {"ready": True}}]
    assert routing["ports"] == [
        {"name": "http", "port": 8012, "protocol": "TCP"},
        {"name": "h2c", "port": 8012, "protocol": "TCP"},
    ], "every Service port -> the activator's http port"
    assert plan.components["predictor"].routing == "activator"
    assert "replicas" not in objects[("Deployment", "iris-predictor")]["spec"], "the activator wakes it"
    assert objects[("HorizontalPodAutoscaler", "iris-predictor")]["spec"]["minReplicas"] == 1
    assert plan.components["predictor"].unsupported == ()


def test_a_grpc_port_goes_to_the_activators_grpc_port_when_it_has_one() -> None:
    routing = by_kind_and_name(planned(activator_slices=[ACTIVATOR_WITH_GRPC]))[
        ("EndpointSlice", "iris-predictor-routing")
    ]
    assert routing["ports"] == [
        {"name": "http", "port": 8012, "protocol": "TCP"},
        {"name": "h2c", "port": 8013, "protocol": "TCP"},
    ]


def test_the_service_names_both_tracks_of_a_canary_for_the_activator_to_wake() -> None:
    spec = {"predictor": {**IDLE["predictor"], "canaryTrafficPercent": 20}}
    old = {"metadata": {"labels": {}}, "spec": {"containers": []}}
    tracks = {("predictor", STABLE): TrackState("iris-predictor-00000000", True, old)}
    plan = plan_service(service(spec), inputs(config=ON, tracks=tracks))
    public = by_kind_and_name(plan)[("Service", "iris-predictor")]
    deployments = public["metadata"]["annotations"]["serving.kubeserve.io/deployment"]
    assert deployments == "iris-predictor,iris-predictor-canary"
    assert {name for kind, name in by_kind_and_name(plan) if kind == "Deployment"} == set(
        deployments.split(",")
    )


READINESS = "serving.kubeserve.io/readiness-probe"


def readiness_of(predictor: dict[str, Any]) -> str | None:
    spec = {"predictor": {**IDLE["predictor"], **predictor}}
    public = by_kind_and_name(plan_service(service(spec), inputs(config=ON)))[("Service", "iris-predictor")]
    readiness: str | None = public["metadata"]["annotations"].get(READINESS)
    return readiness


def custom(*containers: dict[str, Any]) -> dict[str, Any]:
    """A predictor of custom containers (no model), the first serving on port 9000 named `web`."""
    return {"model": None, "containers": list(containers)}


SERVER = {"name": "server", "image": "example/server:1", "ports": [{"name": "web", "containerPort": 9000}]}


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"path": "/ready", "port": 9000}}, "9000:/ready"),
        ({"httpGet": {"path": "/ready", "port": "web"}}, "9000:/ready"),
        ({"httpGet": {"port": 9000}}, "9000:/"),
        ({"httpGet": {"path": "/ready", "port": "other"}}, None),
        ({"httpGet": {"path": "/ready", "port": 9000, "scheme": "HTTPS"}}, None),
        ({"httpGet": {"path": "/ready", "port": 9000, "host": "10.0.0.1"}}, None),
        ({"httpGet": {"path": "/r", "port": 9000, "httpHeaders": [{"name": "X", "value": "1"}]}}, None),
        ({"tcpSocket": {"port": 9000}}, None),
    ],
)
def test_only_a_plain_http_readiness_probe_is_named_for_the_activator(
    probe: dict[str, Any], expected: str | None
) -> None:
    assert readiness_of(custom({**SERVER, "readinessProbe": probe})) == expected


def test_no_probe_is_named_when_another_container_has_its_own_readiness() -> None:
    sidecar = {"name": "agent", "image": "example/agent:1", "readinessProbe": {"tcpSocket": {"port": 9100}}}
    probe = {"httpGet": {"path": "/ready", "port": 9000}}
    assert readiness_of(custom({**SERVER, "readinessProbe": probe}, sidecar)) is None
    assert readiness_of(custom({**SERVER, "readinessProbe": probe}, {**sidecar, "readinessProbe": None})) == (
        "9000:/ready"
    )


@pytest.mark.parametrize(
    ("window", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1m5s", 65)]
)
def test_the_idle_window_comes_from_the_services_annotation(window: str, seconds: int) -> None:
    plan = plan_service(service(IDLE, annotations={WINDOW: window}), inputs(config=ON))
    public = by_kind_and_name(plan)[("Service", "iris-predictor")]
    assert public["metadata"]["annotations"]["serving.kubeserve.io/idle-window-seconds"] == str(seconds)


def test_the_idle_window_defaults_to_the_configurations() -> None:
    config = OperatorConfig(scale_to_zero=ScaleToZeroConfig(enabled=True, idle_window_seconds=45))
    public = by_kind_and_name(planned(config))[("Service", "iris-predictor")]
    assert public["metadata"]["annotations"]["serving.kubeserve.io/idle-window-seconds"] == "45"
    with pytest.raises(ValueError, match="idleWindowSeconds"):
        parse_config("scaleToZero: {idleWindowSeconds: -5}")


@pytest.mark.parametrize("window", ["-5m", "0", "0s", "5 minutes", "", "1.5m", "\uff15"])
def test_a_bad_idle_window_is_refused_naming_the_annotation(window: str) -> None:
    with pytest.raises(PlanningError) as refused:
        plan_service(service(IDLE, annotations={WINDOW: window}), inputs(config=ON))
    assert refused.value.reason == "InvalidAnnotation"
    assert f"metadata.annotations[{WINDOW}] is {window!r}: use a positive number of seconds" in (
        refused.value.message
    )


def test_a_ready_pod_takes_the_routing_from_the_activator_with_the_container_port() -> None:
    pods = endpoint_slice(
        "iris-predictor-pods", POD_PORTS, ("10.0.0.9", True), ("10.0.0.3", None), ("10.0.0.4", False)
    )
    plan = planned(endpoint_slices=[pods], activator_slices=[ACTIVATOR])
    routing = by_kind_and_name(plan)[("EndpointSlice", "iris-predictor-routing")]
    assert [e["addresses"] for e in routing["endpoints"]] == [["10.0.0.3"], ["10.0.0.9"]], "Ready, sorted"
    assert routing["ports"] == POD_PORTS
    assert plan.components["predictor"].routing == "pods"


def test_every_service_port_is_routed_by_name_to_the_pods_or_to_the_activators_http_port() -> None:
    two_ports = {
        "predictor": {
            "minReplicas": 0,
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "example/model:1",
                    "ports": [{"containerPort": 8080}, {"name": "grpc", "containerPort": 8081}],
                }
            ],
        }
    }
    config = inputs(config=ON, activator_slices=[ACTIVATOR])
    routing = by_kind_and_name(plan_service(service(two_ports), config))[
        ("EndpointSlice", "iris-predictor-routing")
    ]
    assert routing["ports"] == [
        {"name": "http", "port": 8012, "protocol": "TCP"},
        {"name": "grpc", "port": 8012, "protocol": "TCP"},
    ]
    wanted = [
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "protocol": "TCP"},
    ]
    pods = endpoint_slice("iris-predictor-pods", wanted, ("10.0.0.9", True))
    stale = endpoint_slice("iris-predictor-pods", wanted[:1], ("10.0.0.5", True), name="old")
    plan = plan_service(service(two_ports), inputs(config=ON, endpoint_slices=[pods, stale]))
    routing = by_kind_and_name(plan)[("EndpointSlice", "iris-predictor-routing")]
    assert routing["ports"] == wanted
    assert routing["endpoints"] == [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}], (
        "a slice of other ports (pods of an older revision) is not routed to"
    )


def test_what_the_former_selector_left_is_deleted_and_nothing_else() -> None:
    def labelled(piece: dict[str, Any], manager: str) -> dict[str, Any]:
        labels = {**piece["metadata"]["labels"], "endpointslice.kubernetes.io/managed-by": manager}
        return {**piece, "metadata": {**piece["metadata"], "labels": labels, "uid": f"uid-{manager}"}}

    old = labelled(
        endpoint_slice("iris-predictor", POD_PORTS, ("10.0.0.9", True)), "endpointslice-controller.k8s.io"
    )
    mirrored = labelled(
        endpoint_slice("iris-predictor", POD_PORTS, ("10.0.0.9", True), name="iris-predictor-m"),
        "endpointslicemirroring-controller.k8s.io",
    )
    ours = labelled(
        endpoint_slice("iris-predictor", POD_PORTS, name="iris-predictor-routing"), "serving.kubeserve.io"
    )
    pods = labelled(endpoint_slice("iris-predictor-pods", POD_PORTS), "endpointslice-controller.k8s.io")
    plan = planned(endpoint_slices=[old, mirrored, ours, pods])
    assert plan.components["predictor"].leftovers == (
        ("EndpointSlice", "iris-predictor-m", "uid-endpointslicemirroring-controller.k8s.io"),
        ("EndpointSlice", "iris-predictor-x1", "uid-endpointslice-controller.k8s.io"),
        ("Endpoints", "iris-predictor", None),
    )
    assert planned(endpoint_slices=[ours, pods]).components["predictor"].leftovers == ()


def test_no_ready_pod_and_no_activator_routes_nowhere() -> None:
    other = endpoint_slice("someone-else", POD_PORTS, ("10.0.0.1", True))
    plan = planned(endpoint_slices=[other])
    routing = by_kind_and_name(plan)[("EndpointSlice", "iris-predictor-routing")]
    assert routing["endpoints"] == []
    assert plan.components["predictor"].routing == "nowhere"


def test_a_component_with_replicas_keeps_its_usual_service() -> None:
    busy = {"predictor": {**SKLEARN["predictor"], "minReplicas": 1}}
    plan = plan_service(service(busy), inputs(config=ON))
    assert [o["kind"] for o in plan.objects] == ["Service", "Deployment"]
    assert plan.objects[1]["spec"]["replicas"] == 1


def _status(plan: Plan, replicas: int, ready: int) -> dict[str, Any]:
    available = "True" if ready >= min(replicas, 1) else "False"
    deployment = {
        "metadata": {"name": "iris-predictor", "generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
            "readyReplicas": ready,
            "conditions": [{"type": "Available", "status": available}],
        },
    }
    status = compute_status(service(IDLE), plan, None, Observed({"iris-predictor": deployment}, []), NOW)
    return {c["type"]: c for c in status["conditions"]}


def test_an_idle_service_is_ready_and_says_it_is_scaled_to_zero() -> None:
    conditions = _status(planned(activator_slices=[ACTIVATOR]), replicas=0, ready=0)
    for kind in ("PredictorReady", "Ready"):
        assert (conditions[kind]["status"], conditions[kind]["reason"]) == ("True", "ScaledToZero")
    assert "idle, scaled to zero" in conditions["Ready"]["message"]
    assert "first request wakes it" in conditions["Ready"]["message"]


def test_an_idle_service_without_an_activator_is_not_ready() -> None:
    conditions = _status(planned(), replicas=0, ready=0)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "ActivatorUnavailable")


def test_a_woken_service_has_the_usual_verdicts() -> None:
    assert _status(planned(activator_slices=[ACTIVATOR]), replicas=1, ready=1)["Ready"]["reason"] == "Ready"
    waking = _status(planned(activator_slices=[ACTIVATOR]), replicas=1, ready=0)["Ready"]
    assert (waking["status"], waking["reason"]) == ("False", "RolloutInProgress")
    off = _status(planned(OperatorConfig()), replicas=0, ready=0)["Ready"]
    assert off["reason"] == "Ready", "off, a Deployment at 0 (scaled by hand) keeps today's verdict"


def test_the_configuration_names_the_activator_and_refuses_unknown_keys() -> None:
    config = parse_config("scaleToZero: {enabled: true, activator: {namespace: edge}}")
    assert config.scale_to_zero.activator_service("kubeserve-system") == ("edge", "kubeserve-activator")
    assert ON.scale_to_zero.activator_service("kubeserve-system") == (
        "kubeserve-system",
        "kubeserve-activator",
    )
    assert ON.scale_to_zero.activator_service(None) is None
    assert OperatorConfig().scale_to_zero.activator_service("kubeserve-system") is None, "off: not followed"
    try:
        parse_config("scaleToZero: {enable: true}")
    except ValueError as error:
        assert "scaleToZero.enable" in str(error)
    else:
        raise AssertionError("an unknown key is refused")


def test_a_follower_forgets_only_slices_its_own_selector_lists() -> None:
    child = {"serving.kubeserve.io/inferenceservice": "iris", "kubernetes.io/service-name": "iris-predictor"}
    assert _selected(child, ("serving.kubeserve.io/inferenceservice",))
    assert not _selected(child, ("kubernetes.io/service-name=kubeserve-activator",))
    assert _selected(
        {"kubernetes.io/service-name": "kubeserve-activator"},
        ("kubernetes.io/service-name=kubeserve-activator",),
    )


class Forbidden:
    """An API server whose RBAC refuses every list (as in a namespace outside the operator's Roles)."""

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        raise ApiError(403, "endpointslices.discovery.k8s.io is forbidden")


def test_activator_slices_the_operator_may_not_read_do_not_keep_it_from_reconciling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> bool:
        api = Forbidden()
        reconciler = Reconciler(api, ClusterView(), ON)  # type: ignore[arg-type]
        follower = Follower(
            api,  # type: ignore[arg-type]
            reconciler,
            activator_slices("kubeserve-activator"),
            "edge",
            Scope(),
            asyncio.Lock(),
        )
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.listed.wait(), 5)
            return follower.selector == {"labelSelector": "kubernetes.io/service-name=kubeserve-activator"}
        finally:
            task.cancel()

    assert asyncio.run(scenario()), "listed (as empty) at once, by its label in its namespace"
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "forbidden" in error and "edge" in error


@pytest.mark.parametrize("backend", ["gateway", "istio"])
def test_a_gateway_routes_an_idle_entry_through_its_own_service_so_the_activator_can_wake_it(
    backend: str,
) -> None:
    spec = {"predictor": {**IDLE["predictor"], "canaryTrafficPercent": 20}}
    old = {"metadata": {"labels": {}}, "spec": {"containers": []}}
    tracks = {("predictor", STABLE): TrackState("iris-predictor-00000000", True, old)}
    mirror = {"serving.kubeserve.io/mirror-percent": "10"}
    plan = plan_service(service(spec, annotations=mirror), inputs(config=ON, tracks=tracks, backend=backend))
    (route,) = [o for o in plan.traffic if o["kind"] in ("HTTPRoute", "VirtualService")]
    if backend == "gateway":
        (rule,) = route["spec"]["rules"]
        assert rule == {"backendRefs": [{"name": "iris-predictor", "port": 80, "weight": 100}]}
    else:
        (http,) = route["spec"]["http"]
        assert http == {
            "route": [
                {
                    "destination": {"host": "iris-predictor.ml.svc.cluster.local", "port": {"number": 80}},
                    "weight": 100,
                }
            ]
        }
    assert [o["kind"] for o in plan.traffic] == [route["kind"]], "no track Services with selectors"
    (note,) = plan.components["predictor"].unsupported
    assert (
        note.startswith("metadata.annotations[serving.kubeserve.io/mirror-percent]: ")
        and "scales to zero" in note
    )
