"""Status from observed Deployments and pods: readiness, reasons a person can act on, dated conditions."""

from __future__ import annotations

from typing import Any

from kubeserve.planning.plan import PlanningError, plan_service
from kubeserve.status.announcements import Announcement, announcements
from kubeserve.status.compute import Observed, compute_status
from kubeserve.status.conditions import Verdict, child_refusal, dated, refused
from kubeserve.status.readiness import deployment_verdict
from tests.unit.planning_inputs import SKLEARN, inputs, service

NOW = "2026-11-25T12:00:00Z"


def deployment(
    replicas: int = 1,
    ready: int = 1,
    generation: int = 1,
    observed: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    available = [{"type": "Available", "status": "True" if ready >= replicas else "False"}]
    return {
        "metadata": {"name": "iris-predictor", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
            "conditions": available + (conditions or []),
        },
    }


def pending_pod(message: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "iris-predictor-abc",
            "labels": {"component": "predictor", "serving.kubeserve.io/track": "stable"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
            ],
        },
    }


def test_an_available_rolled_out_deployment_is_ready() -> None:
    assert deployment_verdict("PredictorReady", deployment(), []).ok


def test_a_missing_or_unobserved_deployment_is_unknown() -> None:
    assert deployment_verdict("PredictorReady", None, []).status == "Unknown"
    assert (
        deployment_verdict("PredictorReady", deployment(generation=2, observed=1), []).reason
        == "RolloutPending"
    )


def test_an_unschedulable_pod_gives_the_schedulers_message() -> None:
    message = "0/5 nodes are available: 3 Insufficient nvidia.com/gpu."
    verdict = deployment_verdict("PredictorReady", deployment(ready=0), [pending_pod(message)])
    assert (verdict.status, verdict.reason) == ("False", "Unschedulable")
    assert message in verdict.message and "iris-predictor-abc" in verdict.message


def failing_pod(key: str, container: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "iris-predictor-abc"}, "status": {"phase": "Pending", key: [container]}}


def test_an_image_the_node_lacks_gives_the_kubelets_reason() -> None:
    waiting = {"reason": "ErrImageNeverPull", "message": 'Container image "x:1" is not present'}
    pod = failing_pod("containerStatuses", {"name": "kserve-container", "state": {"waiting": waiting}})
    verdict = deployment_verdict("PredictorReady", deployment(ready=0), [pod])
    assert (verdict.status, verdict.reason) == ("False", "ErrImageNeverPull")
    assert 'container kserve-container: ErrImageNeverPull; Container image "x:1" is not present' in (
        verdict.message
    )


def test_a_failed_init_container_gives_its_last_log_line() -> None:
    crashed = {"exitCode": 1, "reason": "Error", "message": "error: s3://models/iris: AccessDenied\n"}
    container = {
        "name": "storage-initializer",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": crashed},
    }
    verdict = deployment_verdict(
        "PredictorReady", deployment(ready=0), [failing_pod("initContainerStatuses", container)]
    )
    assert verdict.reason == "CrashLoopBackOff"
    assert verdict.message.endswith(
        "init container storage-initializer: CrashLoopBackOff; exited with code 1: "
        "error: s3://models/iris: AccessDenied"
    )


def test_a_rolled_out_deployment_is_ready_whatever_an_old_pod_says() -> None:
    container = {"name": "kserve-container", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    assert deployment_verdict(
        "PredictorReady", deployment(), [failing_pod("containerStatuses", container)]
    ).ok


def test_replica_failure_and_progress_deadline_are_reported_as_such() -> None:
    quota = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": "exceeded quota",
    }
    verdict = deployment_verdict("PredictorReady", deployment(ready=0, conditions=[quota]), [])
    assert (verdict.reason, verdict.message) == ("FailedCreate", "exceeded quota")
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "slow",
    }
    assert deployment_verdict("PredictorReady", deployment(ready=0, conditions=[stuck]), []).reason == (
        "ProgressDeadlineExceeded"
    )


def test_unchanged_conditions_keep_their_transition_time() -> None:
    previous = [{"type": "Ready", "status": "True", "lastTransitionTime": "earlier"}]
    same = dated([Verdict("Ready", "True", "Ready")], previous, NOW, 3)
    flipped = dated([Verdict("Ready", "False", "Unschedulable", "why")], previous, NOW, 3)
    assert same[0]["lastTransitionTime"] == "earlier" and same[0]["observedGeneration"] == 3
    assert flipped[0]["lastTransitionTime"] == NOW and flipped[0]["message"] == "why"


def test_status_of_a_ready_service() -> None:
    isvc = service(SKLEARN)
    plan = plan_service(isvc, inputs())
    status = compute_status(isvc, plan, None, Observed({"iris-predictor": deployment()}, []), NOW)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "PredictorReady": "True",
        "IngressReady": "True",
        "Ready": "True",
        "PodHardened": "True",
        "FieldsSupported": "True",
    }
    assert status["url"] == "http://iris-predictor.ml.svc.cluster.local"
    assert status["observedGeneration"] == 1
    revision = plan.components["predictor"].revision
    assert status["components"]["predictor"]["latestReadyRevision"] == revision
    assert status["components"]["predictor"]["latestRolledoutRevision"] == revision
    assert status["runtime"]["name"] == "kubeserve-server"


def test_a_planning_error_is_a_false_condition_on_its_component_and_on_ready() -> None:
    isvc = service(SKLEARN)
    error = PlanningError("predictor", "NoRuntime", "no runtime for pmml")
    status = compute_status(isvc, None, error, Observed({}, []), NOW)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["PredictorReady"]["reason"], conditions["PredictorReady"]["message"]) == (
        "NoRuntime",
        "no runtime for pmml",
    )
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "NoRuntime"


def test_the_transformer_is_the_entry_point() -> None:
    spec = {**SKLEARN, "transformer": {"containers": [{"name": "t", "image": "t:1"}]}}
    isvc = service(spec)
    plan = plan_service(isvc, inputs())
    status = compute_status(isvc, plan, None, Observed({"iris-predictor": deployment()}, []), NOW)
    assert status["url"] == "http://iris-transformer.ml.svc.cluster.local"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["TransformerReady"] == "Unknown" and conditions["Ready"] == "Unknown"


def condition(kind: str, status: str, reason: str, message: str = "why") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_a_refused_service_has_one_false_ready_condition_dated_from_when_it_turned_false() -> None:
    previous = {
        "url": "http://iris",
        "conditions": [
            {**condition("Ready", "False", "InvalidSpec"), "lastTransitionTime": "2026-01-01T00:00:00Z"},
            condition("PredictorReady", "False", "InvalidSpec"),
        ],
    }
    status = refused(previous, 3, "TooDeep", "spec.a… is nested deeper than 64 levels", NOW)
    assert status["url"] == "http://iris" and status["observedGeneration"] == 3
    assert status["conditions"] == [
        {
            **condition("Ready", "False", "TooDeep", "spec.a… is nested deeper than 64 levels"),
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 3,
        }
    ]
    assert refused({}, None, "TooDeep", "m", NOW)["conditions"][0]["lastTransitionTime"] == NOW


def test_a_refusal_is_announced_once_as_a_warning() -> None:
    refusal = {"conditions": [condition("Ready", "False", "InternalError", "the operator failed (KeyError)")]}
    assert announcements({}, refusal) == [
        Announcement("Warning", "InternalError", "Ready: the operator failed (KeyError)")
    ]
    assert announcements(refusal, refusal) == []


def test_a_false_ready_explained_by_a_component_is_announced_once_by_the_component() -> None:
    status = {
        "conditions": [
            condition("PredictorReady", "False", "NoRuntime", "no runtime for pmml"),
            condition("Ready", "False", "NoRuntime", "no runtime for pmml"),
        ]
    }
    assert announcements({}, status) == [
        Announcement("Warning", "NoRuntime", "PredictorReady: no runtime for pmml")
    ]
    rolling = {"conditions": [condition("PredictorReady", "False", "RolloutInProgress")]}
    assert announcements({}, rolling) == []
    ready = {"conditions": [condition("Ready", "True", "Ready", "")]}
    assert announcements(status, ready) == [Announcement("Normal", "Ready", "the InferenceService is ready")]


def test_a_refused_child_is_reported_in_the_api_servers_words() -> None:
    reason, message = child_refusal(422, 'spec.template.spec.containers[0].env[0].name: Invalid value: "A=B"')
    assert reason == "ChildRejected" and message.endswith('env[0].name: Invalid value: "A=B"')
    assert child_refusal(403, "deployments.apps is forbidden")[0] == "Forbidden"
