"""Canary rules: which revision each track runs, the canary's share, each track's size and HPA bounds."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.api.components import ComponentSpec
from kubeserve.planning.autoscaler import share_bounds
from kubeserve.planning.naming import LABEL_REVISION
from kubeserve.planning.plan import Plan, plan_service
from kubeserve.planning.rollout import CANARY, STABLE, Rollout, TrackState, plan_rollout, track_replicas
from kubeserve.status.compute import Observed, compute_status
from tests.unit.planning_inputs import inputs, service

OLD, NEW = "iris-predictor-aaaaaaaaaa", "iris-predictor-bbbbbbbbbb"
NOW = "2026-11-25T12:00:00Z"


def track(revision: str, ready: bool = True) -> TrackState:
    return TrackState(revision, ready, {})


@pytest.mark.parametrize(
    ("percent", "stable", "canary", "expected"),
    [
        # First deployment, no change, promote: the stable track takes the new revision.
        (10, None, None, Rollout(NEW, True, requested_percent=10)),
        (10, track(NEW), None, Rollout(NEW, True, requested_percent=10)),
        (None, track(OLD), track(NEW), Rollout(NEW, True)),
        (100, track(OLD), track(NEW), Rollout(NEW, True, requested_percent=100)),
        # Roll back: the stable track keeps its revision and the canary goes.
        (0, track(OLD), track(NEW), Rollout(OLD, False, requested_percent=0)),
        # A canary gets its share only once it runs the new revision and is Ready.
        (10, track(OLD), None, Rollout(OLD, False, NEW, 0, 10)),
        (10, track(OLD), track(NEW, ready=False), Rollout(OLD, False, NEW, 0, 10)),
        (10, track(OLD), track("iris-predictor-cccccccccc"), Rollout(OLD, False, NEW, 0, 10)),
        (10, track(OLD), track(NEW), Rollout(OLD, False, NEW, 10, 10)),
    ],
)
def test_plan_rollout(
    percent: int | None, stable: TrackState | None, canary: TrackState | None, expected: Rollout
) -> None:
    assert plan_rollout(NEW, percent, stable, canary) == expected


@pytest.mark.parametrize(
    ("total", "rollout", "expected"),
    [
        (4, Rollout(NEW, True), (4, 0)),
        (10, Rollout(OLD, False, NEW, 0, 10), (10, 1)),
        (10, Rollout(OLD, False, NEW, 10, 10), (9, 1)),
        (10, Rollout(OLD, False, NEW, 50, 50), (5, 5)),
        (4, Rollout(OLD, False, NEW, 90, 90), (1, 4)),
        (1, Rollout(OLD, False, NEW, 10, 10), (1, 1)),
        (10, Rollout(OLD, False, requested_percent=0), (10, 0)),
    ],
)
def test_track_replicas_follow_the_effective_share(
    total: int, rollout: Rollout, expected: tuple[int, int]
) -> None:
    assert track_replicas(total, rollout) == expected


@pytest.mark.parametrize(
    ("percent", "expected"), [(100, (2, 10)), (50, (1, 5)), (10, (1, 1)), (25, (1, 3)), (0, (1, 1))]
)
def test_hpa_bounds_scale_with_the_share_rounded_up(percent: int, expected: tuple[int, int]) -> None:
    assert share_bounds(ComponentSpec(min_replicas=2, max_replicas=10), percent) == expected


def spec(version: int, percent: int | None = None, **predictor: Any) -> dict[str, Any]:
    component: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": "s3://models/iris",
            "env": [{"name": "VERSION", "value": str(version)}],
        },
        **predictor,
    }
    if percent is not None:
        component["canaryTrafficPercent"] = percent
    return {"predictor": component}


def by_key(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in plan.objects}


def running(plan: Plan, ready: bool = True, name: str = "iris-predictor") -> TrackState:
    """What a track looks like once it runs the Deployment `plan` made."""
    deployment = by_key(plan)[("Deployment", name)]
    return TrackState(plan.components["predictor"].revision, ready, deployment["spec"]["template"])


def test_a_canary_runs_beside_the_stable_template_it_must_not_change() -> None:
    v1 = plan_service(service(spec(1, minReplicas=10)), inputs())
    stable = running(v1)
    canary_spec = service(spec(2, 10, minReplicas=10))
    waiting = plan_service(canary_spec, inputs(tracks={("predictor", STABLE): stable}))
    objects = by_key(waiting)
    assert objects[("Deployment", "iris-predictor")]["spec"]["template"] == stable.template
    assert objects[("Deployment", "iris-predictor")]["spec"]["replicas"] == 10
    canary = objects[("Deployment", "iris-predictor-canary")]
    assert canary["spec"]["replicas"] == 1
    assert canary["spec"]["template"]["metadata"]["labels"]["serving.kubeserve.io/track"] == CANARY

    ready = running(waiting, name="iris-predictor-canary")
    serving = plan_service(
        canary_spec, inputs(tracks={("predictor", STABLE): stable, ("predictor", CANARY): ready})
    )
    assert by_key(serving)[("Deployment", "iris-predictor")]["spec"]["replicas"] == 9
    assert serving.components["predictor"].rollout.canary_percent == 10


def test_a_canary_hpa_gets_bounds_by_its_share_and_the_stable_by_the_rest() -> None:
    scaled = {"minReplicas": 2, "maxReplicas": 10}
    stable = running(plan_service(service(spec(1, **scaled)), inputs()))
    waiting = plan_service(service(spec(2, 20, **scaled)), inputs(tracks={("predictor", STABLE): stable}))
    ready = running(waiting, name="iris-predictor-canary")
    tracks = {("predictor", STABLE): stable, ("predictor", CANARY): ready}
    objects = by_key(plan_service(service(spec(2, 20, **scaled)), inputs(tracks=tracks)))
    bounds = {
        name: (o["spec"]["minReplicas"], o["spec"]["maxReplicas"])
        for (kind, name), o in objects.items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert bounds == {"iris-predictor": (2, 8), "iris-predictor-canary": (1, 2)}
    assert "replicas" not in objects[("Deployment", "iris-predictor-canary")]["spec"]


def observed_deployment(plan: Plan, name: str) -> dict[str, Any]:
    """The Deployment as the API server would report it, rolled out and available."""
    deployment = by_key(plan)[("Deployment", name)]
    replicas = deployment["spec"].get("replicas", 1)
    return {
        **deployment,
        "metadata": {**deployment["metadata"], "generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def test_status_shows_the_split_and_why_a_canary_gets_nothing_yet() -> None:
    v1 = plan_service(service(spec(1)), inputs())
    isvc = service(spec(2, 30))
    plan = plan_service(isvc, inputs(tracks={("predictor", STABLE): running(v1)}))
    unready_pod = {
        "metadata": {
            "name": "iris-predictor-canary-x",
            "labels": {"component": "predictor", "serving.kubeserve.io/track": CANARY},
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False", "message": "containers with unready status: [c]"}
            ],
        },
    }
    canary = observed_deployment(plan, "iris-predictor-canary")
    canary["status"] = {**canary["status"], "availableReplicas": 0, "conditions": []}
    observed = Observed(
        {"iris-predictor": observed_deployment(plan, "iris-predictor"), "iris-predictor-canary": canary},
        [unready_pod],
    )
    status = compute_status(isvc, plan, None, observed, NOW)
    old, new = v1.components["predictor"].revision, plan.components["predictor"].revision
    assert status["components"]["predictor"]["traffic"] == [
        {"revisionName": old, "percent": 100, "latestRevision": False, "tag": "prev"},
        {"revisionName": new, "percent": 0, "latestRevision": True},
    ]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["PredictorCanaryReady"]["status"] == "False"
    assert conditions["PredictorCanaryReady"]["message"].startswith(
        f"canary {new} gets 0% of the traffic until it is Ready (30% requested); {old} keeps 100%: "
    )
    assert (
        "pod iris-predictor-canary-x is running but not Ready: containers with unready status: [c]"
        in (conditions["PredictorCanaryReady"]["message"])
    )
    assert conditions["Ready"]["status"] == "True"


def test_a_stable_deployment_not_yet_running_its_revision_is_not_counted_rolled_out() -> None:
    v1 = plan_service(service(spec(1)), inputs())
    isvc = service(spec(2))
    v2 = plan_service(isvc, inputs(tracks={("predictor", STABLE): running(v1)}))
    previous = observed_deployment(v1, "iris-predictor")
    status = compute_status(isvc, v2, None, Observed({"iris-predictor": previous}, []), NOW)
    assert "latestRolledoutRevision" not in status["components"]["predictor"]
    now_running = observed_deployment(v2, "iris-predictor")
    assert (
        now_running["spec"]["template"]["metadata"]["labels"][LABEL_REVISION]
        in v2.components["predictor"].revision
    )
    status = compute_status(isvc, v2, None, Observed({"iris-predictor": now_running}, []), NOW)
    assert status["components"]["predictor"]["latestRolledoutRevision"] == v2.components["predictor"].revision
