"""Cases for the API's rules on KServe's `storage` (StorageSpec) and `storageUris`, run by test_api_rules
(by the models and by the CRD's CEL alike): (case, InferenceService object, text a refusal must contain)."""

from __future__ import annotations

from typing import Any

FORMAT = {"modelFormat": {"name": "sklearn"}}


def isvc(predictor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = {"predictor": predictor, **spec}
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": body,
    }


def with_storage(storage: dict[str, Any], **model: Any) -> dict[str, Any]:
    return isvc({"model": {**FORMAT, "storage": storage, **model}})


def with_uris(*entries: dict[str, Any], **model: Any) -> dict[str, Any]:
    return isvc({"model": {**FORMAT, **model}, "storageUris": list(entries)})


STORAGE_CEL_CASES = [
    ("storage path", with_storage({"path": "models/iris"}), None),
    ("storage path and key", with_storage({"path": "/models/iris", "key": "minio"}), None),
    (
        "storage parameters",
        with_storage({"path": "iris", "parameters": {"type": "s3", "bucket": "models"}}),
        None,
    ),
    ("storage on a legacy key", isvc({"sklearn": {"storage": {"path": "iris"}}}), None),
    ("storage with an s3 storageUri", with_storage({"key": "minio"}, storageUri="s3://b/iris"), None),
    ("storage without a path", with_storage({"key": "minio"}), "storage.path is required"),
    ("storage path climbs", with_storage({"path": "models/../secrets"}), "storage.path must not"),
    ("storage path is ..", with_storage({"path": ".."}), "storage.path must not"),
    (
        "storage type hdfs",
        with_storage({"path": "iris", "parameters": {"type": "hdfs"}}),
        "storage.parameters.type must be s3",
    ),
    ("storage schemaPath", with_storage({"path": "iris", "schemaPath": "s.json"}), "storage.schemaPath"),
    (
        "storage path with storageUri",
        with_storage({"path": "iris"}, storageUri="s3://b/iris"),
        "storage with storageUri",
    ),
    (
        "storage with a gs storageUri",
        with_storage({"key": "gcs"}, storageUri="gs://b/iris"),
        "storage with storageUri",
    ),
    ("storageUris", with_uris({"uri": "s3://b/base", "mountPath": "/mnt/models/base"}), None),
    ("storageUris default mountPath", with_uris({"uri": "hf://org/model"}), None),
    ("storageUris pvc", with_uris({"uri": "pvc://claim/a", "mountPath": "/mnt/adapters"}), None),
    (
        "storageUris on a transformer",
        isvc(
            {"model": {**FORMAT, "storageUri": "s3://b/m"}},
            transformer={"containers": [{"name": "t", "image": "t:1"}], "storageUris": [{"uri": "s3://b/t"}]},
        ),
        None,
    ),
    *[
        (f"storageUris uri {uri!r}", with_uris({"uri": uri}), "uri must start with gs://")
        for uri in ("oci://registry/model:1", "/models/iris", "ftp://h/m", "s3://b/../x", "s3://")
    ],
    *[
        (
            f"storageUris mountPath {path!r}",
            with_uris({"uri": "s3://b/m", "mountPath": path}),
            "mountPath must be an absolute path",
        )
        for path in ("mnt/models", "/", "/mnt/models/../../etc", "/mnt/..", "../x")
    ],
    (
        "storageUris with storageUri",
        with_uris({"uri": "s3://b/m"}, storageUri="s3://b/n"),
        "storageUris cannot be set",
    ),
    (
        "storageUris with storage",
        with_uris({"uri": "s3://b/m"}, storage={"path": "n"}),
        "storageUris cannot be set",
    ),
    (
        "storageUris with a legacy key's storageUri",
        isvc({"xgboost": {"storageUri": "s3://b/n"}, "storageUris": [{"uri": "s3://b/m"}]}),
        "storageUris cannot be set",
    ),
]


STORAGE_SCHEMA_CASES = [
    ("storage key with a space", with_storage({"path": "iris", "key": "bad key"}), "storage.key"),
    ("storage empty path", with_storage({"path": ""}), "storage.path"),
]
