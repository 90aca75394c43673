"""oci:// and oci+native:// models: KServe's modelcar (the model image as a sidecar whose /models the
model server reads through /proc/<pid>/root, with one shared identity) and the image volume."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.config import OperatorConfig
from kubeserve.planning.hardening import RESTRICTED, loosening
from kubeserve.planning.plan import Plan, PlanningError, plan_service
from kubeserve.planning.storage import StoragePlan, StorageUriError, plan_storage, shared_identity
from tests.unit.planning_inputs import inputs, service

IMAGE = "example/models/sklearn-iris:v1"
DIGEST = "sha256:" + "a" * 64
SMALL = {"cpu": "10m", "memory": "15Mi"}
SHARED = {"name": "kserve-provision-location", "emptyDir": {}}


def modelcar_service(uri: str = f"oci://{IMAGE}", **model: Any) -> dict[str, Any]:
    return {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri, **model}}}


def pod_spec(plan: Plan) -> dict[str, Any]:
    [deployment] = [o for o in plan.objects if o["kind"] == "Deployment"]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def by_name(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in containers}


def test_oci_plans_the_modelcar_sidecar_its_init_container_and_the_shared_directory() -> None:
    plan = plan_storage(f"oci://{IMAGE}", None, OperatorConfig())
    [init] = plan.init_containers
    [sidecar] = plan.sidecars
    assert (init["name"], init["image"], sidecar["name"], sidecar["image"]) == (
        "modelcar-init",
        IMAGE,
        "modelcar",
        IMAGE,
    )
    assert sidecar["command"] == [
        "sh",
        "-c",
        "ln -sfn /proc/$$$$/root/models /mnt/models && exec sleep infinity",
    ]
    assert sidecar["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt"}]
    assert init["command"][:2] == ["sh", "-c"] and "ls -A /models" in init["command"][2]
    assert "volumeMounts" not in init
    for container in (init, sidecar):
        assert container["resources"] == {"requests": SMALL, "limits": SMALL}
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert plan.volumes == (SHARED,)
    assert plan.model_mounts == (
        {"name": "kserve-provision-location", "mountPath": "/mnt", "readOnly": True},
    )
    assert plan.model_dir == "/mnt/models"
    assert plan.server_env == ({"name": "MODEL_INIT_MODE", "value": "async"},)
    assert plan.shares_processes


def test_oci_native_is_an_image_volume_with_the_images_models_at_mnt_models() -> None:
    assert plan_storage(f"oci+native://{IMAGE}@{DIGEST}", None, OperatorConfig()) == StoragePlan(
        init_containers=(),
        volumes=({"name": "mnt-models", "image": {"reference": f"{IMAGE}@{DIGEST}"}},),
        model_mounts=(
            {"name": "mnt-models", "mountPath": "/mnt/models", "readOnly": True, "subPath": "models"},
        ),
    )


@pytest.mark.parametrize("scheme", ["oci", "oci+native"])
@pytest.mark.parametrize(
    "reference",
    [
        IMAGE,
        "registry.example.com:5000/team/iris",
        f"registry.example.com/iris@{DIGEST}",
        f"iris:1.0@{DIGEST}",
        "[::1]:5000/iris:v1",
    ],
)
def test_every_image_reference_of_the_grammar_is_planned(scheme: str, reference: str) -> None:
    plan = plan_storage(f"{scheme}://{reference}", None, OperatorConfig())
    images = [c["image"] for c in plan.sidecars] + [
        v["image"]["reference"] for v in plan.volumes if "image" in v
    ]
    assert images == [reference]


@pytest.mark.parametrize("scheme", ["oci", "oci+native"])
@pytest.mark.parametrize(
    "reference",
    [
        "Example/Models:v1",
        "example/models:",
        "example//models",
        "example/models:v1 && rm -rf /",
        "example/models@sha256:abc",
        "example/models:-v1",
        "/example/models",
        "example/models$(id)",
    ],
)
def test_a_bad_image_reference_is_refused_with_the_grammar(scheme: str, reference: str) -> None:
    uri = f"{scheme}://{reference}"
    with pytest.raises(StorageUriError) as caught:
        plan_storage(uri, None, OperatorConfig())
    assert str(caught.value) == (
        f"storageUri {uri!r}: {reference!r} is not an image reference; use {scheme}://[registry[:port]/]"
        "path[:tag][@sha256:<64 hex digits>], the path in lowercase"
    )


@pytest.mark.parametrize("scheme", ["oci", "oci+native"])
def test_an_empty_image_reference_is_refused(scheme: str) -> None:
    with pytest.raises(StorageUriError) as caught:
        plan_storage(f"{scheme}://", None, OperatorConfig())
    assert (
        str(caught.value) == f"storageUri '{scheme}://' says nothing after {scheme}://: name the model image"
    )


def test_a_bad_reference_becomes_the_predictors_invalid_storage_uri_verdict() -> None:
    with pytest.raises(PlanningError) as caught:
        plan_service(service(modelcar_service("oci://Example/Models:v1")), inputs())
    assert (caught.value.component, caught.value.reason) == ("predictor", "InvalidStorageUri")


def test_the_pod_shares_its_processes_and_every_container_is_restricted_as_one_user() -> None:
    plan = plan_service(service(modelcar_service()), inputs())
    pod = pod_spec(plan)
    assert pod["shareProcessNamespace"] is True
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "modelcar"]
    assert [c["name"] for c in pod["initContainers"]] == ["modelcar-init"]
    identity = {"runAsUser": 1000, "runAsGroup": 1000}
    for container in [*pod["containers"], *pod["initContainers"]]:
        assert container["securityContext"] == {**RESTRICTED, **identity}, container["name"]
    assert loosening(pod) == [] and not plan.components["predictor"].loosened
    assert SHARED in pod["volumes"]
    server = pod["containers"][0]
    assert {"name": "kserve-provision-location", "mountPath": "/mnt", "readOnly": True} in server[
        "volumeMounts"
    ]
    assert {"name": "MODEL_INIT_MODE", "value": "async"} in server["env"]
    assert "--model_dir=/mnt/models" in server["args"]


@pytest.mark.parametrize(
    ("model", "pod", "identity"),
    [
        ({"securityContext": {"runAsUser": 2000}}, None, (2000, 2000)),
        ({"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}}, None, (2000, 3000)),
        ({}, {"runAsUser": 4000, "runAsGroup": 5000}, (4000, 5000)),
        ({"securityContext": {"runAsGroup": 3000}}, {"runAsUser": 4000}, (4000, 3000)),
    ],
)
def test_the_modelcar_runs_as_the_model_servers_user_and_group(
    model: dict[str, Any], pod: dict[str, Any] | None, identity: tuple[int, int]
) -> None:
    """The kernel lets the server into the sidecar's /proc/<pid>/root only with the same user and group."""
    spec = modelcar_service(**model)
    if pod:
        spec["predictor"]["securityContext"] = pod
    containers = pod_spec(plan_service(service(spec), inputs()))
    ids = {
        c["name"]: (c["securityContext"]["runAsUser"], c["securityContext"]["runAsGroup"])
        for c in [*containers["containers"], *containers["initContainers"]]
    }
    assert ids == {"kserve-container": identity, "modelcar": identity, "modelcar-init": identity}


def test_shared_identity_defaults_to_the_images_user_and_its_group_to_the_user() -> None:
    assert shared_identity({}, {}) == {"runAsUser": 1000, "runAsGroup": 1000}
    assert shared_identity({"runAsUser": 0}, {"runAsUser": 7}) == {"runAsUser": 0, "runAsGroup": 0}


def test_a_root_model_server_makes_a_root_modelcar_and_both_are_named_as_loosening() -> None:
    plan = plan_service(service(modelcar_service(securityContext={"runAsUser": 0})), inputs())
    assert [entry for entry in plan.components["predictor"].loosened if "runAsUser is 0" in entry] == [
        "initContainers[modelcar-init].securityContext.runAsUser is 0 (root)",
        "containers[kserve-container].securityContext.runAsUser is 0 (root)",
        "containers[modelcar].securityContext.runAsUser is 0 (root)",
    ]


def test_the_services_own_init_containers_and_collocated_containers_keep_their_identity() -> None:
    spec = modelcar_service()
    spec["predictor"]["initContainers"] = [{"name": "warm", "image": "busybox:1"}]
    spec["predictor"]["containers"] = [{"name": "transformer", "image": "registry.example/tx:1"}]
    pod = pod_spec(plan_service(service(spec), inputs()))
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "transformer", "modelcar"]
    assert [c["name"] for c in pod["initContainers"]] == ["modelcar-init", "warm"]
    others = by_name(pod["containers"])["transformer"], by_name(pod["initContainers"])["warm"]
    assert [c["securityContext"] for c in others] == [RESTRICTED, RESTRICTED]


def test_the_models_own_model_init_mode_wins() -> None:
    spec = modelcar_service(env=[{"name": "MODEL_INIT_MODE", "value": "sync"}])
    server = pod_spec(plan_service(service(spec), inputs()))["containers"][0]
    assert [e for e in server["env"] if e["name"] == "MODEL_INIT_MODE"] == [
        {"name": "MODEL_INIT_MODE", "value": "sync"}
    ]


def test_oci_native_pods_have_no_sidecar_and_share_nothing() -> None:
    pod = pod_spec(plan_service(service(modelcar_service(f"oci+native://{IMAGE}")), inputs()))
    assert "shareProcessNamespace" not in pod and "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["kserve-container"]
    assert {"name": "mnt-models", "image": {"reference": IMAGE}} in pod["volumes"]
    assert pod["containers"][0]["securityContext"] == RESTRICTED


def test_the_same_modelcar_service_plans_the_same_revision() -> None:
    first, second = (plan_service(service(modelcar_service()), inputs()) for _ in range(2))
    assert first.components["predictor"].revision == second.components["predictor"].revision
    other = plan_service(service(modelcar_service(f"oci://{IMAGE}-2")), inputs())
    assert other.components["predictor"].revision != first.components["predictor"].revision
