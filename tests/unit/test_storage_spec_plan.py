"""Storage plans for KServe's `storage` spec (the storage-config entry by secretKeyRef, never read by the
operator) and `storageUris` (several downloads and claims, each at its mountPath)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeserve.api.components import ModelSpec, StorageUri
from kubeserve.config import OperatorConfig
from kubeserve.planning.plan import PlanningError, plan_service
from kubeserve.planning.storage import StoragePlan, StorageUriError, plan_model_storage
from tests.unit.planning_inputs import initializer_runtimes, inputs, service

CONFIG = OperatorConfig.model_validate({"storageInitializer": {"image": "registry.example.com/init:7"}})
ACCOUNT = {
    "metadata": {"name": "sa", "annotations": {"serving.kserve.io/s3-endpoint": "minio:9000"}},
    "secrets": [{"name": "aws-creds"}],
}


def model(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"modelFormat": {"name": "sklearn"}, **fields})


def initializer(plan: StoragePlan) -> dict[str, Any]:
    (container,) = plan.init_containers
    return container


def env(plan: StoragePlan) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in initializer(plan)["env"]}


def uris(*entries: dict[str, str]) -> list[StorageUri]:
    return [StorageUri.model_validate(entry) for entry in entries]


# --- storage (StorageSpec) -------------------------------------------------------------------------


def test_storage_path_reads_the_default_entry_by_reference() -> None:
    plan = plan_model_storage(model(storage={"path": "/models/iris"}), None, ACCOUNT, CONFIG)
    container = initializer(plan)
    assert container["args"] == ["<scheme-placeholder>://models/iris", "/mnt/models"]
    assert container["env"] == [
        {
            "name": "STORAGE_CONFIG",
            "valueFrom": {"secretKeyRef": {"name": "storage-config", "key": "default", "optional": True}},
        }
    ]
    # The entry replaces the ServiceAccount's credentials, as in KServe.
    assert "envFrom" not in container
    assert container["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}]
    assert plan.volumes == ({"name": "kserve-provision-location", "emptyDir": {}},)
    assert plan.model_mounts == (
        {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True},
    )
    assert plan.model_dir == "/mnt/models"


def test_an_explicit_key_must_exist_and_parameters_override_the_entry() -> None:
    storage = {"path": "iris", "key": "minio", "parameters": {"bucket": "models", "region": "eu"}}
    assert env(plan_model_storage(model(storage=storage), None, None, CONFIG)) == {
        "STORAGE_CONFIG": {"secretKeyRef": {"name": "storage-config", "key": "minio", "optional": False}},
        "STORAGE_OVERRIDE_CONFIG": json.dumps({"bucket": "models", "region": "eu"}, separators=(",", ":")),
    }


def test_a_type_parameter_picks_the_default_key_of_that_type() -> None:
    storage = {"path": "iris", "parameters": {"type": "s3", "bucket": "models"}}
    reference = env(plan_model_storage(model(storage=storage), None, None, CONFIG))["STORAGE_CONFIG"]
    assert reference["secretKeyRef"] == {"name": "storage-config", "key": "default_s3", "optional": True}


@pytest.mark.parametrize(
    ("annotations", "secret"),
    [
        ({"serving.kserve.io/storageSecretName": "team-buckets"}, "team-buckets"),
        (
            {
                "serving.kserve.io/storageSecretName": "kserve",
                "serving.kubeserve.io/storageSecretName": "ours",
            },
            "ours",
        ),
        ({"unrelated": "x"}, "storage-config"),
    ],
)
def test_the_annotation_names_the_secret(annotations: dict[str, str], secret: str) -> None:
    plan = plan_model_storage(model(storage={"path": "iris"}), None, None, CONFIG, annotations)
    assert env(plan)["STORAGE_CONFIG"]["secretKeyRef"]["name"] == secret


def test_a_bad_secret_name_is_refused_naming_the_annotation() -> None:
    with pytest.raises(StorageUriError, match="storageSecretName: 'Not_A_Name' is not a Secret name"):
        plan_model_storage(
            model(storage={"path": "iris"}),
            None,
            None,
            CONFIG,
            {"serving.kserve.io/storageSecretName": "Not_A_Name"},
        )


def test_storage_with_a_storage_uri_gives_that_uri_its_credentials() -> None:
    plan = plan_model_storage(
        model(storageUri="s3://models/iris", storage={"key": "minio"}), None, ACCOUNT, CONFIG
    )
    assert initializer(plan)["args"] == ["s3://models/iris", "/mnt/models"]
    assert set(env(plan)) == {"STORAGE_CONFIG"}
    assert "envFrom" not in initializer(plan)


# --- storageUris -----------------------------------------------------------------------------------


def test_downloads_share_one_volume_at_their_common_parent() -> None:
    entries = uris(
        {"uri": "hf://org/base", "mountPath": "/mnt/models/base"},
        {"uri": "s3://bucket/adapters", "mountPath": "/mnt/models/adapters/"},
    )
    plan = plan_model_storage(model(), entries, ACCOUNT, CONFIG)
    container = initializer(plan)
    assert container["args"] == [
        "hf://org/base",
        "/mnt/models/base",
        "s3://bucket/adapters",
        "/mnt/models/adapters",
    ]
    assert container["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}]
    # The ServiceAccount's credentials, and its S3 annotations since one entry is s3://.
    assert container["envFrom"] == [{"secretRef": {"name": "aws-creds", "optional": True}}]
    assert container["env"] == [{"name": "S3_ENDPOINT", "value": "minio:9000"}]
    assert plan.volumes == ({"name": "kserve-provision-location", "emptyDir": {}},)
    assert plan.model_mounts == (
        {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True},
    )
    assert plan.model_dir == "/mnt/models"


def test_one_entry_gets_its_own_directory() -> None:
    plan = plan_model_storage(model(), uris({"uri": "gs://b/m", "mountPath": "/opt/model"}), None, CONFIG)
    assert initializer(plan)["args"] == ["gs://b/m", "/opt/model"]
    assert plan.model_mounts[0]["mountPath"] == "/opt/model"
    assert plan.model_dir == "/opt/model"


def test_the_default_mount_path_is_mnt_models() -> None:
    plan = plan_model_storage(model(), uris({"uri": "s3://b/m"}), None, CONFIG)
    assert initializer(plan)["args"] == ["s3://b/m", "/mnt/models"]


def test_claims_are_mounted_at_their_path_beside_the_downloads() -> None:
    entries = uris(
        {"uri": "s3://bucket/model", "mountPath": "/mnt/models/model"},
        {"uri": "pvc://shared/tokenizers/v2", "mountPath": "/mnt/models/tokenizer"},
        {"uri": "pvc://scratch", "mountPath": "/mnt/data"},
    )
    plan = plan_model_storage(model(), entries, None, CONFIG)
    assert initializer(plan)["args"] == ["s3://bucket/model", "/mnt/models/model"]
    assert plan.volumes == (
        {"name": "kserve-provision-location", "emptyDir": {}},
        {"name": "kserve-pvc-source-1", "persistentVolumeClaim": {"claimName": "shared", "readOnly": True}},
        {"name": "kserve-pvc-source-2", "persistentVolumeClaim": {"claimName": "scratch", "readOnly": True}},
    )
    assert plan.model_mounts == (
        {"name": "kserve-provision-location", "mountPath": "/mnt/models/model", "readOnly": True},
        {
            "name": "kserve-pvc-source-1",
            "mountPath": "/mnt/models/tokenizer",
            "readOnly": True,
            "subPath": "tokenizers/v2",
        },
        {"name": "kserve-pvc-source-2", "mountPath": "/mnt/data", "readOnly": True},
    )
    assert plan.model_dir == "/mnt"


def test_claims_alone_need_no_initializer() -> None:
    plan = plan_model_storage(
        model(), uris({"uri": "pvc://claim/m", "mountPath": "/mnt/models"}), None, CONFIG
    )
    assert plan.init_containers == ()
    assert plan.model_dir == "/mnt/models"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"uri": "s3://b/a", "mountPath": "/mnt/a"}, {"uri": "s3://b/b", "mountPath": "/opt/b"}],
            "share no parent directory but '/'",
        ),
        (
            [{"uri": "s3://b/a", "mountPath": "/mnt/models"}, {"uri": "pvc://c", "mountPath": "/mnt/models"}],
            "two volumes would be mounted at /mnt/models",
        ),
        (
            [
                {"uri": "pvc://c", "mountPath": "/mnt/x"},
                {"uri": "pvc://d/y", "mountPath": "/mnt/x/"},
                {"uri": "s3://b/m"},
            ],
            "two volumes would be mounted at /mnt/x",
        ),
        ([{"uri": "pvc://Bad_Claim/m"}], "'Bad_Claim' is not a PersistentVolumeClaim name"),
    ],
)
def test_impossible_layouts_are_refused(entries: list[dict[str, str]], message: str) -> None:
    with pytest.raises(StorageUriError, match=message):
        plan_model_storage(model(), uris(*entries), None, CONFIG)


def test_gs_entries_get_the_gcs_key_file() -> None:
    plan = plan_model_storage(model(), uris({"uri": "gs://b/m"}), {"secrets": [{"name": "gcp"}]}, CONFIG)
    assert env(plan) == {
        "GOOGLE_APPLICATION_CREDENTIALS": "/var/secrets/gcs/gcloud-application-credentials.json"
    }
    assert plan.volumes[1] == {
        "name": "kserve-gcs-credentials",
        "secret": {"secretName": "gcp", "optional": True},
    }


# --- through the whole plan ------------------------------------------------------------------------


def deployment(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    plan = plan_service(service(spec, **metadata), inputs(cluster_runtimes=initializer_runtimes()))
    (found,) = [obj for obj in plan.objects if obj["kind"] == "Deployment"]
    return found


def test_the_deployment_carries_the_secret_reference_and_the_model_mount() -> None:
    spec = {
        "predictor": {
            "model": {"modelFormat": {"name": "sklearn"}, "storage": {"path": "iris", "key": "minio"}}
        }
    }
    pod = deployment(spec)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert {
        "name": "STORAGE_CONFIG",
        "valueFrom": {"secretKeyRef": {"name": "storage-config", "key": "minio", "optional": False}},
    } in init["env"]
    assert {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]


def test_storage_uris_on_a_transformer_reach_its_pod() -> None:
    spec = {
        "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m"}},
        "transformer": {
            "containers": [{"name": "t", "image": "registry.example.com/t:1"}],
            "storageUris": [{"uri": "s3://b/vocab", "mountPath": "/mnt/vocab"}],
        },
    }
    plan = plan_service(service(spec), inputs())
    (transformer,) = [
        o for o in plan.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "iris-transformer"
    ]
    pod = transformer["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["args"] == ["s3://b/vocab", "/mnt/vocab"]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/mnt/vocab", "readOnly": True}
    ]


def test_a_layout_without_a_common_parent_is_an_invalid_storage_uri_condition() -> None:
    spec = {
        "predictor": {
            "model": {"modelFormat": {"name": "sklearn"}},
            "storageUris": [{"uri": "s3://b/a", "mountPath": "/a"}, {"uri": "s3://b/b", "mountPath": "/b"}],
        }
    }
    with pytest.raises(PlanningError) as raised:
        plan_service(service(spec), inputs())
    assert (raised.value.component, raised.value.reason) == ("predictor", "InvalidStorageUri")
