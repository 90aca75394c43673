"""Pod hardening: every container starts from the `restricted` level, a service's securityContext
merges over the runtime's field by field, and what loosens the level is named, or refused."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.config import OperatorConfig, PodSecurityConfig
from kubeserve.planning.hardening import RESTRICTED, loosening, merged
from kubeserve.planning.plan import Plan, PlanningError, plan_service
from kubeserve.status.compute import Observed, compute_status
from tests.unit.planning_inputs import REPO, SKLEARN, example, initializer_runtimes, inputs, service

TRANSFORMER = {"containers": [{"name": "tx", "image": "registry.example/tx:1"}]}


def pod_specs(plan: Plan) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in plan.objects if o["kind"] == "Deployment"]


def containers(plan: Plan) -> list[dict[str, Any]]:
    return [
        c for pod in pod_specs(plan) for kind in ("initContainers", "containers") for c in pod.get(kind, [])
    ]


def with_model_fields(**fields: Any) -> dict[str, Any]:
    return {"predictor": {"model": {**SKLEARN["predictor"]["model"], **fields}}}


@pytest.mark.parametrize("file", sorted(path.name for path in (REPO / "examples").glob("*.yaml")))
def test_every_container_of_every_example_is_restricted_and_nothing_loosens_it(file: str) -> None:
    plan = plan_service(example(file), inputs())
    assert containers(plan)
    for container in containers(plan):
        context = container["securityContext"]
        assert merged(context, RESTRICTED) == context, f"{container['name']}: {context}"
    assert [loosening(pod) for pod in pod_specs(plan)] == [[] for _ in pod_specs(plan)]
    assert all(not part.loosened for part in plan.components.values())


def test_transformers_custom_containers_and_init_containers_are_restricted_too() -> None:
    spec = {**SKLEARN, "transformer": TRANSFORMER}
    spec["predictor"] = {**spec["predictor"], "initContainers": [{"name": "warm", "image": "busybox:1"}]}
    plan = plan_service(service(spec), inputs(cluster_runtimes=initializer_runtimes()))
    names = {c["name"]: c["securityContext"] for c in containers(plan)}
    assert {"tx", "warm", "storage-initializer", "kserve-container"} <= set(names)
    assert names["tx"] == RESTRICTED and names["warm"] == RESTRICTED


def test_a_services_security_context_merges_over_the_runtimes_field_by_field() -> None:
    plan = plan_service(service(with_model_fields(securityContext={"runAsUser": 2000})), inputs())
    [server] = [c for c in containers(plan) if c["name"] == "kserve-container"]
    assert server["securityContext"] == {**RESTRICTED, "runAsUser": 2000}


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"privileged": True}, "containers[kserve-container].securityContext.privileged is true"),
        ({"runAsUser": 0, "runAsNonRoot": False}, "runAsUser is 0 (root)"),
        ({"runAsNonRoot": False}, "runAsNonRoot is false"),
        ({"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}}, "capabilities.add has NET_ADMIN"),
        ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation is true"),
        ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile is Unconfined"),
    ],
)
def test_loosening_is_named_in_a_false_condition_and_the_rest_stays(
    context: dict[str, Any], named: str
) -> None:
    isvc = service(with_model_fields(securityContext=context))
    plan = plan_service(isvc, inputs())
    [server] = [c for c in containers(plan) if c["name"] == "kserve-container"]
    assert server["securityContext"]["capabilities"]["drop"] == ["ALL"]
    status = compute_status(isvc, plan, None, Observed({}, []), "2026-12-02T00:00:00Z")
    condition = {c["type"]: c for c in status["conditions"]}["PodHardened"]
    assert (condition["status"], condition["reason"]) == ("False", "HardeningLoosened")
    assert named in condition["message"] and condition["message"].startswith("predictor: ")
    assert "NET_BIND_SERVICE" not in condition["message"]


def test_a_host_path_volume_and_a_root_pod_are_named() -> None:
    spec = {
        "predictor": {
            **SKLEARN["predictor"],
            "securityContext": {"runAsUser": 0},
            "volumes": [{"name": "host", "hostPath": {"path": "/etc"}}],
        }
    }
    [loosened] = [part.loosened for part in plan_service(service(spec), inputs()).components.values()]
    assert loosened == ("securityContext.runAsUser is 0 (root)", "volumes[host] is a hostPath")


def test_a_hardened_service_says_so() -> None:
    isvc = service(SKLEARN)
    status = compute_status(
        isvc, plan_service(isvc, inputs()), None, Observed({}, []), "2026-12-02T00:00:00Z"
    )
    condition = {c["type"]: c for c in status["conditions"]}["PodHardened"]
    assert (condition["status"], condition["reason"]) == ("True", "Restricted")


def test_the_configuration_can_refuse_loosening() -> None:
    strict = OperatorConfig(pod_security=PodSecurityConfig(allow_loosening=False))
    plan_service(service(SKLEARN), inputs(config=strict))
    with pytest.raises(PlanningError) as refused:
        plan_service(service(with_model_fields(securityContext={"privileged": True})), inputs(config=strict))
    assert (refused.value.component, refused.value.reason) == ("predictor", "HardeningRefused")
    assert "privileged is true" in str(refused.value) and "podSecurity.allowLoosening: false" in str(
        refused.value
    )


@pytest.mark.parametrize("context", [{"privileged": True}, {"capabilities": {"add": ["SYS_ADMIN"]}}])
def test_an_escalating_container_gets_no_default_the_api_server_would_refuse_beside_it(
    context: dict[str, Any],
) -> None:
    plan = plan_service(service(with_model_fields(securityContext=context)), inputs())
    [server] = [c for c in containers(plan) if c["name"] == "kserve-container"]
    assert "allowPrivilegeEscalation" not in server["securityContext"]
    assert server["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
