"""Storage plans: every storageUri scheme, credentials by reference from the ServiceAccount, determinism."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeserve.config import OperatorConfig
from kubeserve.planning.storage import MODEL_DIR, StoragePlan, StorageUriError, plan_storage

CONFIG = OperatorConfig.model_validate({"storageInitializer": {"image": "registry.example.com/init:7"}})
DOWNLOAD_VOLUME = {"name": "kserve-provision-location", "emptyDir": {}}
MODEL_MOUNT = {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True}
INIT_MOUNT = {"name": "kserve-provision-location", "mountPath": "/mnt/models"}


def service_account(*secrets: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "models", "namespace": "ml", "annotations": annotations},
        "secrets": [{"name": name} for name in secrets],
    }


def initializer(plan: StoragePlan) -> dict[str, Any]:
    (container,) = plan.init_containers
    return container


def env(plan: StoragePlan) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in initializer(plan).get("env", [])}


def test_no_storage_uri_needs_nothing() -> None:
    assert plan_storage(None, service_account("creds"), CONFIG) == StoragePlan(
        (), (), (), model_dir=MODEL_DIR
    )


def test_model_dir_is_mnt_models() -> None:
    assert MODEL_DIR == "/mnt/models"


@pytest.mark.parametrize("path", ["/models/iris", "/opt/model.joblib", "/"])
def test_absolute_path_downloads_nothing_and_is_the_model_dir(path: str) -> None:
    assert plan_storage(path, service_account("creds"), CONFIG) == StoragePlan((), (), (), model_dir=path)


# --- pvc:// ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "claim", "sub_path"),
    [
        ("pvc://models/iris/v1", "models", "iris/v1"),
        ("pvc://models/iris/", "models", "iris"),
        ("pvc://my.claim-2/a", "my.claim-2", "a"),
        ("pvc://models/", "models", None),
        ("pvc://models", "models", None),
    ],
)
def test_pvc_is_mounted_read_only_without_a_download(uri: str, claim: str, sub_path: str | None) -> None:
    plan = plan_storage(uri, service_account("creds"), CONFIG)
    mount: dict[str, Any] = {"name": "kserve-pvc-source", "mountPath": "/mnt/models", "readOnly": True}
    if sub_path is not None:
        mount["subPath"] = sub_path
    assert plan == StoragePlan(
        init_containers=(),
        volumes=(
            {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
        ),
        model_mounts=(mount,),
        model_dir="/mnt/models",
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pvc://", "'' is not a PersistentVolumeClaim name"),
        ("pvc:///path", "'' is not a PersistentVolumeClaim name"),
        ("pvc://Models/x", "'Models' is not a PersistentVolumeClaim name"),
        ("pvc://under_score/x", "'under_score' is not a PersistentVolumeClaim name"),
        ("pvc://models/../etc", "must not contain '..'"),
        ("pvc://models/a/../../b", "must not contain '..'"),
    ],
)
def test_bad_pvc_uris_are_refused(uri: str, message: str) -> None:
    with pytest.raises(StorageUriError) as caught:
        plan_storage(uri, None, CONFIG)
    assert str(caught.value).startswith(f"storageUri {uri!r}: ")
    assert message in str(caught.value)


# --- downloads -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "gs://bucket/iris",
        "s3://bucket/iris",
        "https://models.example.com/iris.tar.gz",
        "http://models.example.com/iris.joblib",
        "hf://org/model",
    ],
)
def test_remote_uris_get_the_storage_initializer(uri: str) -> None:
    plan = plan_storage(uri, None, CONFIG)
    assert plan == StoragePlan(
        init_containers=(
            {
                "name": "storage-initializer",
                "image": "registry.example.com/init:7",
                "args": [uri, "/mnt/models"],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "100Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [INIT_MOUNT],
            },
        ),
        volumes=(DOWNLOAD_VOLUME,),
        model_mounts=(MODEL_MOUNT,),
        model_dir="/mnt/models",
    )


def test_initializer_image_comes_from_the_configuration() -> None:
    assert initializer(plan_storage("s3://b/m", None, OperatorConfig()))["image"] == (
        OperatorConfig().storage_initializer.image
    )


@pytest.mark.parametrize(
    "uri", ["ftp://host/model", "file:///models/iris", "models/iris", "", "s3:/bucket", "S3://bucket/m"]
)
def test_unsupported_uris_are_refused_with_the_choices(uri: str) -> None:
    with pytest.raises(StorageUriError) as caught:
        plan_storage(uri, None, CONFIG)
    assert str(caught.value) == (
        f"storageUri {uri!r} is not supported: use gs://, s3://, https://, http://, hf://, oci://, "
        "oci+native://, pvc://<claim>/<path> or an absolute path"
    )


@pytest.mark.parametrize("scheme", ["s3", "gs", "https", "hf"])
def test_a_scheme_with_nothing_after_it_is_refused(scheme: str) -> None:
    with pytest.raises(StorageUriError, match=f"says nothing after {scheme}://"):
        plan_storage(f"{scheme}://", None, CONFIG)


# --- credentials by reference ----------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["s3://bucket/m", "hf://org/model", "https://host/m.tgz", "gs://bucket/m"])
def test_service_account_secrets_reach_the_initializer_by_reference(uri: str) -> None:
    plan = plan_storage(uri, service_account("aws-creds", "hf-token", "aws-creds"), CONFIG)
    assert initializer(plan)["envFrom"] == [
        {"secretRef": {"name": "aws-creds", "optional": True}},
        {"secretRef": {"name": "hf-token", "optional": True}},
    ]
    assert plan.model_mounts == (MODEL_MOUNT,)


def test_service_account_without_secrets_adds_no_env_from() -> None:
    for account in (None, {}, {"metadata": {"name": "sa"}}, {"secrets": None}, service_account()):
        assert "envFrom" not in initializer(plan_storage("s3://bucket/m", account, CONFIG))


def test_secret_entries_without_a_name_are_skipped() -> None:
    account = {"secrets": [{"name": "ok"}, {}, {"name": ""}]}
    assert initializer(plan_storage("s3://b/m", account, CONFIG))["envFrom"] == [
        {"secretRef": {"name": "ok", "optional": True}}
    ]


def test_s3_annotations_become_the_initializer_env_sorted_by_name() -> None:
    annotations = {
        "serving.kserve.io/s3-endpoint": "minio.storage:9000",
        "serving.kserve.io/s3-region": "eu-west-1",
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-cabundle": "/etc/ssl/minio.pem",
        "serving.kserve.io/s3-useanoncredential": "true",
        "serving.kserve.io/s3-usevirtualbucket": "1",
        "serving.kserve.io/unrelated": "x",
        "s3-endpoint": "not-prefixed",
    }
    plan = plan_storage("s3://bucket/m", service_account("creds", **annotations), CONFIG)
    assert initializer(plan)["env"] == [
        {"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/minio.pem"},
        {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
        {"name": "S3_ENDPOINT", "value": "minio.storage:9000"},
        {"name": "S3_USER_VIRTUAL_BUCKET", "value": "1"},
        {"name": "S3_USE_HTTPS", "value": "0"},
        {"name": "S3_VERIFY_SSL", "value": "0"},
        {"name": "awsAnonymousCredential", "value": "true"},
    ]


def test_kubeserve_annotation_prefix_wins_over_kserve() -> None:
    account = service_account(
        **{
            "serving.kserve.io/s3-endpoint": "kserve:9000",
            "serving.kubeserve.io/s3-endpoint": "kubeserve:9000",
            "serving.kubeserve.io/s3-region": "us-east-2",
        }
    )
    assert env(plan_storage("s3://bucket/m", account, CONFIG)) == {
        "S3_ENDPOINT": "kubeserve:9000",
        "AWS_DEFAULT_REGION": "us-east-2",
    }


@pytest.mark.parametrize("uri", ["gs://bucket/m", "https://host/m.tgz", "hf://org/model"])
def test_s3_annotations_apply_to_s3_only(uri: str) -> None:
    account = {"metadata": {"annotations": {"serving.kserve.io/s3-endpoint": "minio:9000"}}}
    assert "env" not in initializer(plan_storage(uri, account, CONFIG))


def test_gcs_mounts_the_first_secret_as_the_key_file() -> None:
    plan = plan_storage("gs://bucket/m", service_account("gcp-key", "other"), CONFIG)
    container = initializer(plan)
    assert container["env"] == [
        {
            "name": "GOOGLE_APPLICATION_CREDENTIALS",
            "value": "/var/secrets/gcs/gcloud-application-credentials.json",
        }
    ]
    assert container["volumeMounts"] == [
        INIT_MOUNT,
        {"name": "kserve-gcs-credentials", "mountPath": "/var/secrets/gcs", "readOnly": True},
    ]
    assert plan.volumes == (
        DOWNLOAD_VOLUME,
        {"name": "kserve-gcs-credentials", "secret": {"secretName": "gcp-key", "optional": True}},
    )
    assert plan.model_mounts == (MODEL_MOUNT,)


def test_gcs_without_secrets_is_anonymous() -> None:
    plan = plan_storage("gs://public/m", service_account(), CONFIG)
    assert "env" not in initializer(plan)
    assert plan.volumes == (DOWNLOAD_VOLUME,)
    assert initializer(plan)["volumeMounts"] == [INIT_MOUNT]


def test_the_model_server_mounts_the_download_read_only_and_the_initializer_read_write() -> None:
    plan = plan_storage("s3://bucket/m", None, CONFIG)
    assert plan.model_mounts[0]["readOnly"] is True
    assert "readOnly" not in initializer(plan)["volumeMounts"][0]


# --- determinism -----------------------------------------------------------------------------------


def test_same_input_gives_the_same_plan_whatever_the_annotation_order() -> None:
    annotations = {
        "serving.kserve.io/s3-region": "eu-west-1",
        "serving.kserve.io/s3-endpoint": "minio:9000",
        "serving.kubeserve.io/s3-usehttps": "0",
    }
    forward = service_account("a", "b", **annotations)
    backward = service_account("a", "b", **dict(reversed(annotations.items())))
    plans = [plan_storage("s3://bucket/m", account, CONFIG) for account in (forward, backward, forward)]
    dumps = {json.dumps([plan.init_containers, plan.volumes, plan.model_mounts]) for plan in plans}
    assert len(dumps) == 1


def test_plans_do_not_share_mutable_parts() -> None:
    first = plan_storage("s3://bucket/m", None, CONFIG)
    initializer(first)["resources"]["limits"]["memory"] = "64Gi"
    initializer(first)["volumeMounts"].append({"name": "x", "mountPath": "/x"})
    assert plan_storage("s3://bucket/m", None, CONFIG) == plan_storage("s3://bucket/m", None, CONFIG)
    assert initializer(plan_storage("s3://bucket/m", None, CONFIG))["resources"]["limits"]["memory"] == "1Gi"
