"""What planning makes of an InferenceService: children, names, labels, owners, pods, autoscalers."""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.api.serving_runtime import ServingRuntime
from kubeserve.planning.naming import LABEL_REVISION, LABEL_RUNTIME, LABEL_SERVICE
from kubeserve.planning.plan import LABEL_TRACK, Plan, PlanningError, plan_service
from kubeserve.planning.pods import with_version
from tests.unit.planning_inputs import REPO, SKLEARN, example, initializer_runtimes, inputs, service


def by_key(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in plan.objects}


def serving_container(plan: Plan, name: str = "iris-predictor") -> dict[str, Any]:
    container: dict[str, Any] = by_key(plan)[("Deployment", name)]["spec"]["template"]["spec"]["containers"][
        0
    ]
    return container


def test_a_model_gets_a_deployment_and_a_service_owned_by_the_service() -> None:
    plan = plan_service(service(SKLEARN), inputs())
    objects = by_key(plan)
    assert set(objects) == {("Deployment", "iris-predictor"), ("Service", "iris-predictor")}
    for obj in objects.values():
        meta = obj["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["labels"][LABEL_SERVICE] == "iris"
        assert meta["labels"][LABEL_RUNTIME] == "kubeserve-server"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "serving.kubeserve.io/v1beta1",
                "kind": "InferenceService",
                "name": "iris",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    service_spec = objects[("Service", "iris-predictor")]["spec"]
    assert service_spec["ports"][0] == {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    assert service_spec["selector"] == {LABEL_SERVICE: "iris", "component": "predictor"}


def test_the_runtime_container_is_templated_and_the_model_args_appended() -> None:
    spec = {
        "predictor": {
            "model": {
                **SKLEARN["predictor"]["model"],
                "args": ["--workers=2"],
                "env": [{"name": "A", "value": "1"}],
            }
        }
    }
    container = serving_container(plan_service(service(spec), inputs()))
    assert container["name"] == "kserve-container"
    assert container["args"][:3] == ["--model_name=iris", "--model_dir=/mnt/models", "--model_format=sklearn"]
    assert container["args"][-1] == "--workers=2"
    assert {"name": "A", "value": "1"} in container["env"]
    assert {"mountPath": "/mnt/models", "name": "kserve-provision-location"} in container["volumeMounts"]


def test_model_fields_replace_the_runtimes_and_runtime_version_replaces_the_tag() -> None:
    ports = [{"name": "http1", "containerPort": 9000, "protocol": "TCP"}]
    spec = {
        "predictor": {"model": {**SKLEARN["predictor"]["model"], "ports": ports, "runtimeVersion": "9.9"}}
    }
    container = serving_container(plan_service(service(spec), inputs()))
    assert container["ports"] == ports
    assert container["image"] == "ghcr.io/kubeserve/model-server:9.9"
    assert "modelFormat" not in container and "storageUri" not in container


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (  # the runtime's: requests cpu 100m, memory 256Mi; limits cpu 1, memory 2Gi
            {"limits": {"cpu": "2"}},
            {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        ),
        (
            {"requests": {"cpu": "2", "nvidia.com/gpu": "1"}, "limits": {"cpu": "2", "nvidia.com/gpu": "1"}},
            {
                "requests": {"cpu": "2", "memory": "256Mi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"},
            },
        ),
    ],
)
def test_model_resources_replace_the_runtimes_resource_by_resource(
    model: dict[str, Any], expected: dict[str, Any]
) -> None:
    """As KServe's strategic merge of the two containers: a model that raises its CPU limit keeps the
    runtime's requests and memory limit, instead of losing them (and its requests with them)."""
    spec = {"predictor": {"model": {**SKLEARN["predictor"]["model"], "resources": model}}}
    container = serving_container(plan_service(service(spec), inputs()))
    assert container["resources"] == expected


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("image", "version", "expected"),
    [
        ("repo/img:1", "2", "repo/img:2"),
        ("repo/img", "2", "repo/img:2"),
        ("host:5000/img", "2", "host:5000/img:2"),
        (f"host:5000/img:1@{DIGEST}", "2", "host:5000/img:2"),
        ("repo/img:1", DIGEST, f"repo/img@{DIGEST}"),
        ("host:5000/img", DIGEST, f"host:5000/img@{DIGEST}"),
        (f"host:5000/img:1@sha256:{'f' * 64}", DIGEST, f"host:5000/img@{DIGEST}"),
    ],
)
def test_runtime_version_replaces_tag_or_digest_and_leaves_registry_ports_alone(
    image: str, version: str, expected: str
) -> None:
    assert with_version(image, version) == expected


def test_the_storage_initializer_fetches_into_the_model_dir() -> None:
    plan = plan_service(service(SKLEARN), inputs(cluster_runtimes=initializer_runtimes()))
    pod = by_key(plan)[("Deployment", "iris-predictor")]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "storage-initializer"
    assert pod["initContainers"][0]["args"] == ["s3://models/iris", "/mnt/models"]
    assert {"name": "kserve-provision-location", "emptyDir": {}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts == [{"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True}]
    assert "STORAGE_URI" not in {entry["name"] for entry in pod["containers"][0].get("env", [])}


S3_READER = {
    "metadata": {"name": "s3-reader", "annotations": {"serving.kserve.io/s3-endpoint": "minio:9000"}},
    "secrets": [{"name": "s3-creds"}],
}


def test_the_service_accounts_secrets_reach_the_initializer_by_reference() -> None:
    spec = {"predictor": {**SKLEARN["predictor"], "serviceAccountName": "s3-reader"}}
    runtimes = initializer_runtimes()
    plan = plan_service(
        service(spec), inputs(service_accounts={"s3-reader": S3_READER}, cluster_runtimes=runtimes)
    )
    pod = by_key(plan)[("Deployment", "iris-predictor")]["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["envFrom"] == [{"secretRef": {"name": "s3-creds", "optional": True}}]
    assert {"name": "S3_ENDPOINT", "value": "minio:9000"} in init["env"]
    assert pod["serviceAccountName"] == "s3-reader"


def test_a_runtime_without_its_storage_helper_fetches_the_model_itself_with_the_same_credentials() -> None:
    """kubeserve-server ships so: the download overlaps the server's start, with no init container."""
    spec = {"predictor": {**SKLEARN["predictor"], "serviceAccountName": "s3-reader"}}
    plan = plan_service(service(spec), inputs(service_accounts={"s3-reader": S3_READER}))
    pod = by_key(plan)[("Deployment", "iris-predictor")]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    server = pod["containers"][0]
    assert {"name": "STORAGE_URI", "value": "s3://models/iris"} in server["env"]
    assert {"name": "S3_ENDPOINT", "value": "minio:9000"} in server["env"]
    assert server["envFrom"] == [{"secretRef": {"name": "s3-creds", "optional": True}}]
    assert server["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}]
    assert {"name": "kserve-provision-location", "emptyDir": {}} in pod["volumes"]


def test_several_storage_uris_keep_the_initializer_even_when_the_runtime_fetches_its_own_model() -> None:
    predictor = {
        "model": {"modelFormat": {"name": "sklearn"}},
        "storageUris": [
            {"uri": "s3://b/model", "mountPath": "/mnt/models/model"},
            {"uri": "s3://b/vocab", "mountPath": "/mnt/models/vocab"},
        ],
    }
    pod = by_key(plan_service(service({"predictor": predictor}), inputs()))[("Deployment", "iris-predictor")]
    spec = pod["spec"]["template"]["spec"]
    [init] = spec["initContainers"]
    assert init["args"] == ["s3://b/model", "/mnt/models/model", "s3://b/vocab", "/mnt/models/vocab"]
    assert "STORAGE_URI" not in {entry["name"] for entry in spec["containers"][0].get("env", [])}


def test_an_autoscaler_only_when_the_component_may_scale() -> None:
    fixed = {"predictor": {**SKLEARN["predictor"], "minReplicas": 2, "maxReplicas": 2}}
    plan = plan_service(service(fixed), inputs())
    assert ("HorizontalPodAutoscaler", "iris-predictor") not in by_key(plan)
    assert by_key(plan)[("Deployment", "iris-predictor")]["spec"]["replicas"] == 2

    scaling = {
        "predictor": {
            **SKLEARN["predictor"],
            "minReplicas": 2,
            "maxReplicas": 5,
            "scaleMetric": "memory",
            "scaleTarget": 70,
        }
    }
    objects = by_key(plan_service(service(scaling), inputs()))
    hpa = objects[("HorizontalPodAutoscaler", "iris-predictor")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["scaleTargetRef"]["name"] == "iris-predictor"
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    assert "replicas" not in objects[("Deployment", "iris-predictor")]["spec"]


def test_default_autoscaling_is_cpu_at_80_percent_and_min_replicas_is_floored_at_one() -> None:
    spec = {"predictor": {**SKLEARN["predictor"], "minReplicas": 0, "maxReplicas": 3}}
    hpa = by_key(plan_service(service(spec), inputs()))[("HorizontalPodAutoscaler", "iris-predictor")]["spec"]
    assert hpa["minReplicas"] == 1
    assert hpa["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }


def test_a_transformer_learns_the_predictor_host() -> None:
    plan = plan_service(example("transformer.yaml"), inputs())
    objects = by_key(plan)
    assert {k for k in objects if k[0] == "Deployment"} == {
        ("Deployment", "image-classifier-predictor"),
        ("Deployment", "image-classifier-transformer"),
    }
    container = serving_container(plan, "image-classifier-transformer")
    host = "image-classifier-predictor.ml"
    assert {"name": "PREDICTOR_HOST", "value": host} in container["env"]
    assert f"--predictor_host={host}" in container["args"]
    assert container["args"].count("--model_name=mnist") == 1
    assert not any(a.startswith("--model_name=image-classifier") for a in container["args"])


def test_custom_containers_are_used_as_written() -> None:
    plan = plan_service(example("custom-container.yaml"), inputs())
    container = serving_container(plan, "custom-model-predictor")
    assert container["image"] == "registry.example.com/team/custom-model:1.0"
    assert container["args"] == ["--model_name=custom-model"]
    assert plan.runtime is None


def test_a_pvc_uri_is_mounted_not_downloaded() -> None:
    spec = {
        "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "pvc://models/iris/v1"}}
    }
    pod = by_key(plan_service(service(spec), inputs()))[("Deployment", "iris-predictor")]["spec"]["template"][
        "spec"
    ]
    assert "initContainers" not in pod
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/mnt/models")
    assert mount["readOnly"] is True and mount["subPath"] == "iris/v1"
    assert {"name": mount["name"], "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod[
        "volumes"
    ]


def test_a_namespaced_runtime_wins_and_its_pod_fields_are_merged() -> None:
    runtime = ServingRuntime.model_validate(
        {
            "metadata": {"name": "team-sklearn", "namespace": "ml"},
            "spec": {
                "supportedModelFormats": [{"name": "sklearn", "autoSelect": True, "priority": 1}],
                "nodeSelector": {"pool": "inference"},
                "containers": [
                    {"name": "kserve-container", "image": "team/sklearn:1", "args": ["{{ .Name }}"]}
                ],
            },
        }
    )
    plan = plan_service(service(SKLEARN), inputs(namespaced_runtimes=[runtime]))
    assert plan.runtime is not None and plan.runtime.runtime.name == "team-sklearn"
    pod = by_key(plan)[("Deployment", "iris-predictor")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["iris"]
    assert pod["nodeSelector"] == {"pool": "inference"}


def test_no_runtime_is_a_planning_error_naming_what_was_considered() -> None:
    spec = {"predictor": {"model": {"modelFormat": {"name": "pmml"}, "storageUri": "s3://m/p"}}}
    with pytest.raises(PlanningError) as raised:
        plan_service(service(spec), inputs())
    assert (raised.value.component, raised.value.reason) == ("predictor", "NoRuntime")
    assert "pmml" in raised.value.message and "kubeserve-server" in raised.value.message


def test_the_revision_is_a_stable_hash_of_the_pod_template() -> None:
    first = plan_service(service(SKLEARN), inputs()).components["predictor"]
    again = plan_service(service(SKLEARN), inputs()).components["predictor"]
    changed_spec = {"predictor": {"model": {**SKLEARN["predictor"]["model"], "args": ["--workers=4"]}}}
    changed = plan_service(service(changed_spec), inputs()).components["predictor"]
    assert first.revision == again.revision
    assert first.revision != changed.revision
    assert first.revision.startswith("iris-predictor-")
    template = by_key(plan_service(service(SKLEARN), inputs()))[("Deployment", "iris-predictor")]["spec"][
        "template"
    ]
    assert first.revision.endswith(template["metadata"]["labels"][LABEL_REVISION])
    assert template["metadata"]["labels"][LABEL_TRACK] == "stable"


def test_every_example_plans_with_the_shipped_runtimes() -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        plan = plan_service(example(path.name), inputs())
        assert plan.objects, path.name


def test_containers_beside_a_model_run_in_its_pod_and_take_the_services_traffic() -> None:
    transformer = {
        "name": "transformer-container",
        "image": "example/transformer:1",
        "args": ["--predictor_host=localhost:8085"],
        "ports": [{"containerPort": 9000, "protocol": "TCP"}],
    }
    spec = {"predictor": {**SKLEARN["predictor"], "containers": [transformer]}}
    plan = plan_service(service(spec), inputs())
    pod = by_key(plan)[("Deployment", "iris-predictor")]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "transformer-container"]
    assert pod["containers"][1]["securityContext"]["runAsNonRoot"] is True, "hardened like the rest"
    ports = by_key(plan)[("Service", "iris-predictor")]["spec"]["ports"]
    assert [p["targetPort"] for p in ports] == [9000]


def test_a_container_beside_a_model_may_not_take_the_model_servers_name() -> None:
    spec = {
        "predictor": {**SKLEARN["predictor"], "containers": [{"name": "kserve-container", "image": "x:1"}]}
    }
    with pytest.raises(ValueError, match="none may be named kserve-container"):
        service(spec)
