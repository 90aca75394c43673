"""What a pod needs to find its model in /mnt/models: a download, a mounted claim, or nothing.

- `gs://`, `s3://`, `http(s)://`, `hf://`: the storage initializer
  (kubeserve_storage) runs as an init container and downloads into an emptyDir
  that the model server mounts read-only.
- `oci://` (KServe's modelcar, an image run as a sidecar that shares its files):
  refused with a StorageUriError, since no init container can fetch it; the
  component then reports InvalidStorageUri instead of a pod stuck in Init.
- `pvc://<claim>/<path>`: the claim is mounted read-only at /mnt/models, with
  `<path>` as its subPath; nothing is downloaded.
- An absolute path: the model is already in the image or on a volume the
  component mounts; nothing is added, and the model directory is that path.

Credentials travel by reference only, as in KServe, so the operator never
reads a Secret: every secret the component's ServiceAccount lists reaches the
initializer through `envFrom` (optional, so a missing one does not block the
pod), which carries AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or HF_TOKEN. For
`s3://`, the ServiceAccount's S3 annotations become the initializer's
environment under the names kubeserve_storage reads. For `gs://`, Kubeserve
follows KServe's convention: the first secret of the ServiceAccount is mounted
at /var/secrets/gcs and GOOGLE_APPLICATION_CREDENTIALS points at its
`gcloud-application-credentials.json` key.

The same input always gives the same output (env sorted by name, secrets in
the ServiceAccount's order), since the operator hashes the pod template to
name revisions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.config import OperatorConfig

MODEL_DIR = "/mnt/models"
INITIALIZER = "storage-initializer"
DOWNLOAD_VOLUME = "kserve-provision-location"
PVC_VOLUME = "kserve-pvc-source"
GCS_VOLUME = "kserve-gcs-credentials"
GCS_DIR = "/var/secrets/gcs"
GCS_KEY = "gcloud-application-credentials.json"
DOWNLOAD_SCHEMES = frozenset({"gs", "s3", "http", "https", "hf"})

ANNOTATION_PREFIXES = ("serving.kubeserve.io/", "serving.kserve.io/")
"""Prefixes of the ServiceAccount's S3 annotations; Kubeserve's own wins over KServe's."""
S3_ANNOTATION_ENV = {
    "s3-endpoint": "S3_ENDPOINT",
    "s3-region": "AWS_DEFAULT_REGION",
    "s3-usehttps": "S3_USE_HTTPS",
    "s3-verifyssl": "S3_VERIFY_SSL",
    "s3-cabundle": "AWS_CA_BUNDLE",
    "s3-useanoncredential": "awsAnonymousCredential",
    "s3-usevirtualbucket": "S3_USER_VIRTUAL_BUCKET",
}
"""ServiceAccount annotation (after the prefix) to the initializer's environment variable."""

_CLAIM_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class StoragePlan:
    """The pod's share of storage: init containers and volumes to add, mounts for the model server."""

    init_containers: tuple[dict[str, Any], ...]
    volumes: tuple[dict[str, Any], ...]
    model_mounts: tuple[dict[str, Any], ...]
    model_dir: str = MODEL_DIR
    """Where the model server finds the model: /mnt/models, or the storageUri itself for a local path."""


class StorageUriError(ValueError):
    """A storageUri no plan can be made for; the message says what is wrong with it."""


def plan_storage(
    storage_uri: str | None, service_account: Mapping[str, Any] | None, config: OperatorConfig
) -> StoragePlan:
    """The storage plan for `storage_uri`, with the credentials of `service_account` (None: none)."""
    if storage_uri is None:
        return StoragePlan((), (), ())
    scheme, separator, rest = storage_uri.partition("://")
    if not separator and storage_uri.startswith("/"):
        return StoragePlan((), (), (), model_dir=storage_uri)
    if scheme == "pvc" and separator:
        return _claim_plan(storage_uri, rest)
    if scheme == "oci" and separator:
        raise StorageUriError(
            f"storageUri {storage_uri!r}: oci:// model images (modelcars) are not supported yet; "
            "publish the model to gs://, s3://, https://, hf:// or a PersistentVolumeClaim (pvc://) instead"
        )
    if scheme in DOWNLOAD_SCHEMES and separator:
        if not rest:
            raise StorageUriError(f"storageUri {storage_uri!r} says nothing after {scheme}://")
        return _download_plan(storage_uri, scheme, service_account or {}, config)
    raise StorageUriError(
        f"storageUri {storage_uri!r} is not supported: use gs://, s3://, https://, http://, hf://, "
        "pvc://<claim>/<path> or an absolute path"
    )


def _claim_plan(storage_uri: str, rest: str) -> StoragePlan:
    claim, _, sub_path = rest.partition("/")
    sub_path = sub_path.strip("/")
    if not _CLAIM_NAME.fullmatch(claim):
        raise StorageUriError(
            f"storageUri {storage_uri!r}: {claim!r} is not a PersistentVolumeClaim name; "
            "use pvc://<claim>/<path>"
        )
    if ".." in sub_path.split("/"):
        raise StorageUriError(f"storageUri {storage_uri!r}: the path in the claim must not contain '..'")
    mount: dict[str, Any] = {"name": PVC_VOLUME, "mountPath": MODEL_DIR, "readOnly": True}
    if sub_path:
        mount["subPath"] = sub_path
    volume = {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
    return StoragePlan(init_containers=(), volumes=(volume,), model_mounts=(mount,))


def _download_plan(
    storage_uri: str, scheme: str, service_account: Mapping[str, Any], config: OperatorConfig
) -> StoragePlan:
    secrets = _secret_names(service_account)
    env = _s3_env(service_account) if scheme == "s3" else {}
    volumes: list[dict[str, Any]] = [{"name": DOWNLOAD_VOLUME, "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": DOWNLOAD_VOLUME, "mountPath": MODEL_DIR}]
    if scheme == "gs" and secrets:
        volumes.append({"name": GCS_VOLUME, "secret": {"secretName": secrets[0], "optional": True}})
        mounts.append({"name": GCS_VOLUME, "mountPath": GCS_DIR, "readOnly": True})
        env["GOOGLE_APPLICATION_CREDENTIALS"] = f"{GCS_DIR}/{GCS_KEY}"
    initializer: dict[str, Any] = {
        "name": INITIALIZER,
        "image": config.storage_initializer.image,
        "args": [storage_uri, MODEL_DIR],
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
        "volumeMounts": mounts,
    }
    if env:
        initializer["env"] = [{"name": name, "value": env[name]} for name in sorted(env)]
    if secrets:
        initializer["envFrom"] = [{"secretRef": {"name": name, "optional": True}} for name in secrets]
    model_mount = {"name": DOWNLOAD_VOLUME, "mountPath": MODEL_DIR, "readOnly": True}
    return StoragePlan(init_containers=(initializer,), volumes=tuple(volumes), model_mounts=(model_mount,))


def _secret_names(service_account: Mapping[str, Any]) -> list[str]:
    """The names in the ServiceAccount's `secrets`, in its order, each once."""
    names = (entry.get("name") for entry in service_account.get("secrets") or [])
    return list(dict.fromkeys(name for name in names if name))


def _s3_env(service_account: Mapping[str, Any]) -> dict[str, str]:
    """The initializer's S3 settings from the ServiceAccount's annotations, Kubeserve's prefix first."""
    annotations: Mapping[str, str] = (service_account.get("metadata") or {}).get("annotations") or {}
    env: dict[str, str] = {}
    for suffix, variable in S3_ANNOTATION_ENV.items():
        values = [annotations[p + suffix] for p in ANNOTATION_PREFIXES if p + suffix in annotations]
        if values:
            env[variable] = values[0]
    return env
