"""KServe's `storage` (StorageSpec) and `storageUris` on the control plane: the Deployment's storage
initializer reads the storage-config entry through a secretKeyRef (the operator, which may not read
Secrets, never does), storageUris become one download per entry at its mountPath, the service gets
Ready, and bad combinations are refused by the API server with the field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.cluster.isvc import Isvcs, example, pod_spec


def service(name: str, annotations: dict[str, str] | None = None, **predictor: Any) -> dict[str, Any]:
    """The sklearn example, renamed, with `predictor` laid over its predictor and no storageUri."""
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = name
    if annotations:
        body["metadata"]["annotations"] = annotations
    del body["spec"]["predictor"]["model"]["storageUri"]
    model = predictor.pop("model", {})
    body["spec"]["predictor"]["model"].update(model)
    body["spec"]["predictor"].update(predictor)
    return body


def test_storage_reads_its_storage_config_entry_by_reference(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    k8s.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "team-buckets"},
            "stringData": {
                "minio": json.dumps({"type": "s3", "bucket": "models", "endpoint_url": "http://m"})
            },
        },
    )
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(
        service(
            "spec-iris",
            {"serving.kserve.io/storageSecretName": "team-buckets"},
            model={"storage": {"path": "/sklearn/iris", "key": "minio", "parameters": {"region": "eu-1"}}},
        )
    )
    pod = pod_spec(kube, namespace, "spec-iris-predictor")
    # kubeserve-server fetches its own model: the initializer's arguments and environment are its.
    assert "initContainers" not in pod
    server = pod["containers"][0]
    env = [entry for entry in server["env"] if entry["name"].startswith("STORAGE_")]
    assert env == [
        {
            "name": "STORAGE_CONFIG",
            "valueFrom": {"secretKeyRef": {"name": "team-buckets", "key": "minio", "optional": False}},
        },
        {"name": "STORAGE_OVERRIDE_CONFIG", "value": '{"region":"eu-1"}'},
        {"name": "STORAGE_URI", "value": "<scheme-placeholder>://sklearn/iris"},
    ]
    assert {"name": "kserve-provision-location", "emptyDir": {}} in pod["volumes"]
    assert {"name": "kserve-provision-location", "mountPath": "/mnt/models"} in server["volumeMounts"]
    isvcs.wait_ready("spec-iris")


@pytest.fixture
def claim(kube: k8s.ApiClient, namespace: str) -> Iterator[str]:
    """A claim bound to a volume made for it, so that the scheduler places pods that mount it."""
    core = k8s.CoreV1Api(kube)
    volume = f"{namespace}-models"
    core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "hostPath": {"path": "/var/lib/models"},
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "shared-models"},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    try:
        yield "shared-models"
    finally:
        core.delete_persistent_volume(volume)


def test_storage_uris_download_each_entry_into_its_mount_path(
    kube: k8s.ApiClient, namespace: str, operator: object, claim: str
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(
        service(
            "multi-iris",
            storageUris=[
                {"uri": "s3://models/sklearn/iris", "mountPath": "/mnt/models/base"},
                {"uri": "https://models.example.com/vocab.tar.gz", "mountPath": "/mnt/models/vocab"},
                {"uri": f"pvc://{claim}/tokenizers", "mountPath": "/mnt/models/tokenizer"},
            ],
        )
    )
    pod = pod_spec(kube, namespace, "multi-iris-predictor")
    [init] = pod["initContainers"]
    assert init["args"] == [
        "s3://models/sklearn/iris",
        "/mnt/models/base",
        "https://models.example.com/vocab.tar.gz",
        "/mnt/models/vocab",
    ]
    assert init["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}]
    assert pod["volumes"] == [
        {"name": "kserve-provision-location", "emptyDir": {}},
        {
            "name": "kserve-pvc-source-2",
            "persistentVolumeClaim": {"claimName": "shared-models", "readOnly": True},
        },
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True},
        {
            "name": "kserve-pvc-source-2",
            "mountPath": "/mnt/models/tokenizer",
            "readOnly": True,
            "subPath": "tokenizers",
        },
    ]
    isvcs.wait_ready("multi-iris")


def test_a_layout_the_pod_cannot_have_is_a_condition(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(
        service(
            "apart",
            storageUris=[
                {"uri": "s3://b/a", "mountPath": "/models/a"},
                {"uri": "s3://b/b", "mountPath": "/data"},
            ],
        )
    )
    condition = isvcs.wait_condition("apart", "Ready", status="False", reason="InvalidStorageUri")
    assert "share no parent directory but '/'" in condition["message"]


@pytest.mark.parametrize(
    ("predictor", "named"),
    [
        ({"model": {"storage": {"key": "minio"}}}, "spec.predictor.model.storage: Invalid value"),
        (
            {"model": {"storage": {"path": "iris", "parameters": {"type": "hdfs"}}}},
            "storage.parameters.type must be s3",
        ),
        ({"model": {"storage": {"path": "a/../b"}}}, "spec.predictor.model.storage.path"),
        (
            {"model": {"storage": {"path": "iris", "schemaPath": "s.json"}}},
            "storage.schemaPath is not supported",
        ),
        (
            {"model": {"storageUri": "gs://b/iris", "storage": {"key": "minio"}}},
            "storage with storageUri: storageUri must be s3://",
        ),
        (
            {"model": {"storageUri": "s3://b/iris"}, "storageUris": [{"uri": "s3://b/x"}]},
            "spec.predictor.storageUris: Invalid value",
        ),
        ({"storageUris": [{"uri": "oci://registry/model:1"}]}, "spec.predictor.storageUris[0].uri"),
        (
            {"storageUris": [{"uri": "s3://b/m", "mountPath": "/mnt/../etc"}]},
            "spec.predictor.storageUris[0].mountPath",
        ),
    ],
)
def test_bad_storage_is_refused_naming_the_field(
    kube: k8s.ApiClient, namespace: str, operator: object, predictor: dict[str, Any], named: str
) -> None:
    with pytest.raises(ApiException) as refused:
        Isvcs(kube, namespace).apply(service("refused", **predictor))
    assert refused.value.status == 422, refused.value.body
    assert named in json.loads(refused.value.body)["message"]
