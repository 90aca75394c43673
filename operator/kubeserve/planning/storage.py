"""What a pod needs to find its model in /mnt/models: a download, a mounted claim, or nothing.

- `gs://`, `s3://`, `http(s)://`, `hf://`: the storage initializer
  (kubeserve_storage) runs as an init container and downloads into an emptyDir
  that the model server mounts read-only.
- `oci://<image>` (KServe's modelcar): the model image runs as a sidecar,
  `modelcar`, in a pod that shares one process namespace; it links
  /mnt/models, in an emptyDir mounted at /mnt, to `/proc/<its pid>/root/models`
  and sleeps, so the model server reads the image's /models through /proc. An
  init container on the same image, `modelcar-init`, has the kubelet pull it
  before the model server starts, and fails (its message on the condition)
  when the image has no /models. Reading another container's root through
  /proc is a ptrace-mode check: without capabilities, the reader's user AND
  group must equal the sidecar's, so both run as one identity
  (`shared_identity`).
- `oci+native://<image>`: the image is a Kubernetes image volume (the
  ImageVolume feature), its /models mounted read-only at /mnt/models, with no
  sidecar. Always planned so: an API server without the feature refuses the
  Deployment, and that refusal becomes the ChildRejected condition.
- `pvc://<claim>/<path>`: the claim is mounted read-only at /mnt/models, with
  `<path>` as its subPath; nothing is downloaded.
- An absolute path: the model is already in the image or on a volume the
  component mounts; nothing is added, and the model directory is that path.
- `storage` (KServe's StorageSpec): a download of `storage.path` from the bucket
  an entry of the `storage-config` Secret describes (see `_storage_spec_plan`).
- `storageUris`: one initializer fetching every entry into its mountPath (see
  `_storage_uris_plan`).

Credentials travel by reference only, as in KServe, so the operator never
reads a Secret: every secret the component's ServiceAccount lists reaches the
initializer through `envFrom` (optional, so a missing one does not block the
pod), which carries AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or HF_TOKEN. For
`s3://`, the ServiceAccount's S3 annotations become the initializer's
environment under the names kubeserve_storage reads. For `gs://`, Kubeserve
follows KServe's convention: the first secret of the ServiceAccount is mounted
at /var/secrets/gcs and GOOGLE_APPLICATION_CREDENTIALS points at its
`gcloud-application-credentials.json` key. A `storage` spec replaces all of
that with one secretKeyRef to its storage-config entry.

The same input always gives the same output (env sorted by name, secrets in
the ServiceAccount's order), since the operator hashes the pod template to
name revisions.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubeserve.api.common import IMAGE_PATTERN
from kubeserve.api.components import PredictorExtensionSpec, StorageSpec, StorageUri
from kubeserve.config import OperatorConfig

MODEL_DIR = "/mnt/models"
INITIALIZER = "storage-initializer"
DOWNLOAD_VOLUME = "kserve-provision-location"
PVC_VOLUME = "kserve-pvc-source"
GCS_VOLUME = "kserve-gcs-credentials"
GCS_DIR = "/var/secrets/gcs"
GCS_KEY = "gcloud-application-credentials.json"
DOWNLOAD_SCHEMES = frozenset({"gs", "s3", "http", "https", "hf"})
NON_ROOT_ID = 1000
"""The user (and group) Kubeserve's own containers run as, as its images declare them."""

MODELCAR = "modelcar"
MODELCAR_INIT = "modelcar-init"
IMAGE_MODEL_DIR = "/models"
"""Where a model image keeps its files, by KServe's modelcar convention."""
MODELCAR_RESOURCES = {"cpu": "10m", "memory": "15Mi"}
"""KServe's defaults for the modelcar containers, which only link, list and sleep; requests equal limits."""
MODEL_INIT_MODE = {"name": "MODEL_INIT_MODE", "value": "async"}
"""Tells KServe's model servers that the model directory may appear after they start (the sidecar links
it in parallel) so they wait for it."""
IMAGE_VOLUME = "mnt-models"
_IMAGE = re.compile(IMAGE_PATTERN)

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

STORAGE_SECRET = "storage-config"
"""KServe's default Secret of storage entries, one bucket description (JSON) per key."""
STORAGE_SECRET_ANNOTATION = "storageSecretName"
"""InferenceService annotation (after a prefix of ANNOTATION_PREFIXES) naming another such Secret."""
STORAGE_CONFIG_ENV = "STORAGE_CONFIG"
STORAGE_OVERRIDE_ENV = "STORAGE_OVERRIDE_CONFIG"
DEFAULT_STORAGE_KEY = "default"
PLACEHOLDER_SCHEME = "<scheme-placeholder>"
"""KServe's stand-in for the scheme and bucket of a storage.path: only the storage-config entry, which
the initializer reads and the operator never does, knows them."""

STORAGE_URI_ENV = "STORAGE_URI"
"""KServe's variable naming the model a runtime fetches itself."""

STORAGE_URI_CHOICES = (
    "gs://, s3://, https://, http://, hf://, oci://, oci+native://, pvc://<claim>/<path> or an absolute path"
)
STORAGE_URIS_CHOICES = "gs://, s3://, https://, http://, hf:// or pvc://<claim>/<path>"

_CLAIM_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class StoragePlan:
    """The pod's share of storage: init containers and volumes to add, mounts for the model server."""

    init_containers: tuple[dict[str, Any], ...]
    volumes: tuple[dict[str, Any], ...]
    model_mounts: tuple[dict[str, Any], ...]
    model_dir: str = MODEL_DIR
    """Where the model server finds the model: /mnt/models, or the storageUri itself for a local path."""
    sidecars: tuple[dict[str, Any], ...] = ()
    """Containers that run beside the model server (the modelcar)."""
    server_env: tuple[dict[str, Any], ...] = ()
    """Environment the model server gets unless it sets the same names itself."""
    server_env_from: tuple[dict[str, Any], ...] = ()
    """Sources of environment the model server gets (the credentials of a download it does itself)."""
    shares_processes: bool = False
    """The pod shares one process namespace, and the model server, the sidecars and these init containers
    run as one user and group (`shared_identity`)."""


class StorageUriError(ValueError):
    """A storageUri no plan can be made for; the message says what is wrong with it."""


def plan_model_storage(
    model: PredictorExtensionSpec | None,
    storage_uris: Sequence[StorageUri] | None,
    service_account: Mapping[str, Any] | None,
    config: OperatorConfig,
    annotations: Mapping[str, str] | None = None,
) -> StoragePlan:
    """The storage plan of a component: its storageUris, else its model's storage spec, else its
    model's storageUri. `annotations` are the InferenceService's (they may name the storage Secret)."""
    if storage_uris is not None:
        return _storage_uris_plan(storage_uris, service_account or {}, config)
    if model is not None and model.storage is not None:
        return _storage_spec_plan(model.storage, model.storage_uri, annotations or {}, config)
    return plan_storage(model.storage_uri if model else None, service_account, config)


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
        volume, mount = _claim(storage_uri, rest, PVC_VOLUME, MODEL_DIR)
        return StoragePlan(init_containers=(), volumes=(volume,), model_mounts=(mount,))
    if scheme == "oci" and separator:
        return _modelcar_plan(_image_reference(storage_uri, scheme, rest))
    if scheme == "oci+native" and separator:
        return _image_volume_plan(_image_reference(storage_uri, scheme, rest))
    _check_download(storage_uri)
    return _download_plan([storage_uri, MODEL_DIR], MODEL_DIR, {scheme}, service_account or {}, config)


def fetched_by_runtime(plan: StoragePlan) -> StoragePlan:
    """The plan for a runtime whose storage helper is disabled: its model server fetches the model
    itself, so no init container runs and the download overlaps the server's own start (an
    initializer must end, and the kubelet notice it, before the server's container starts). The
    server gets what the initializer would have: the location as STORAGE_URI (KServe's variable), its
    environment and credentials, and the download volume, writable. Anything but one download into
    the model directory (several storageUris) keeps its initializer."""
    initializer = next((c for c in plan.init_containers if c["name"] == INITIALIZER), None)
    if initializer is None or len(initializer["args"]) != 2 or initializer["args"][1] != plan.model_dir:
        return plan
    location = {"name": STORAGE_URI_ENV, "value": initializer["args"][0]}
    return replace(
        plan,
        init_containers=tuple(c for c in plan.init_containers if c is not initializer),
        model_mounts=tuple(initializer["volumeMounts"]),
        server_env=(*plan.server_env, *initializer.get("env", ()), location),
        server_env_from=(*plan.server_env_from, *initializer.get("envFrom", ())),
    )


def _check_download(uri: str, field: str = "storageUri", choices: str = STORAGE_URI_CHOICES) -> None:
    """Refuse a URI the storage initializer cannot download, saying what would work in `field`."""
    scheme, separator, rest = uri.partition("://")
    if not (scheme in DOWNLOAD_SCHEMES and separator):
        raise StorageUriError(f"{field} {uri!r} is not supported: use {choices}")
    if not rest:
        raise StorageUriError(f"{field} {uri!r} says nothing after {scheme}://")


def _image_reference(uri: str, scheme: str, rest: str) -> str:
    """The image an oci:// or oci+native:// URI names, checked against the image reference grammar."""
    if not rest:
        raise StorageUriError(f"storageUri {uri!r} says nothing after {scheme}://: name the model image")
    if not _IMAGE.fullmatch(rest):
        raise StorageUriError(
            f"storageUri {uri!r}: {rest!r} is not an image reference; use {scheme}://[registry[:port]/]"
            "path[:tag][@sha256:<64 hex digits>], the path in lowercase"
        )
    return rest


def _modelcar_container(name: str, image: str, script: str) -> dict[str, Any]:
    """A container on the model image running `script` with `sh` (a modelcar image carries a shell, as
    KServe's do); `command` replaces any entrypoint the image has."""
    return {
        "name": name,
        "image": image,
        "command": ["sh", "-c", script],
        "resources": {"requests": dict(MODELCAR_RESOURCES), "limits": dict(MODELCAR_RESOURCES)},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _modelcar_plan(image: str) -> StoragePlan:
    """KServe's modelcar: the sidecar links MODEL_DIR to its own /models through /proc and sleeps; the
    init container pulls the image first and checks it has a model. The kubelet reduces `$$` in a command
    to `$` (its escape for `$(VAR)`), so `$$$$` reaches the shell as `$$`, its pid. `ln -n` replaces the
    link a previous run of the sidecar left (to a pid now gone) instead of writing inside it; `exec`
    keeps the pid the link names while making `sleep` the one process that receives SIGTERM."""
    parent = posixpath.dirname(MODEL_DIR)
    link = f"ln -sfn /proc/$$$$/root{IMAGE_MODEL_DIR} {MODEL_DIR} && exec sleep infinity"
    check = (
        f'[ -d {IMAGE_MODEL_DIR} ] && [ -n "$$(ls -A {IMAGE_MODEL_DIR})" ] '
        f"|| {{ echo 'this model image has no files in {IMAGE_MODEL_DIR}, where a modelcar image keeps its "
        "model' >&2; exit 1; }"
    )
    sidecar = _modelcar_container(MODELCAR, image, link)
    sidecar["volumeMounts"] = [{"name": DOWNLOAD_VOLUME, "mountPath": parent}]
    return StoragePlan(
        init_containers=(_modelcar_container(MODELCAR_INIT, image, check),),
        volumes=({"name": DOWNLOAD_VOLUME, "emptyDir": {}},),
        model_mounts=({"name": DOWNLOAD_VOLUME, "mountPath": parent, "readOnly": True},),
        sidecars=(sidecar,),
        server_env=(MODEL_INIT_MODE,),
        shares_processes=True,
    )


def _image_volume_plan(image: str) -> StoragePlan:
    """The model image as an image volume, its /models at MODEL_DIR (image volumes are read-only)."""
    mount = {
        "name": IMAGE_VOLUME,
        "mountPath": MODEL_DIR,
        "readOnly": True,
        "subPath": IMAGE_MODEL_DIR.lstrip("/"),
    }
    return StoragePlan((), ({"name": IMAGE_VOLUME, "image": {"reference": image}},), (mount,))


def shared_identity(server: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, int]:
    """The runAsUser and runAsGroup of a pod that reads the modelcar through /proc: the model server's
    (its securityContext `server`, else the pod's `pod`), else NON_ROOT_ID; the group defaults to the
    user's number. The kernel lets a process without capabilities into another's /proc/<pid>/root only
    when its user and group both equal the other's, so every container of the exchange gets both."""
    user = next((v for v in (server.get("runAsUser"), pod.get("runAsUser")) if v is not None), NON_ROOT_ID)
    group = next((v for v in (server.get("runAsGroup"), pod.get("runAsGroup")) if v is not None), user)
    return {"runAsUser": user, "runAsGroup": group}


def _claim(storage_uri: str, rest: str, volume_name: str, mount_path: str) -> tuple[dict[str, Any], ...]:
    """The volume of the claim a pvc:// URI names, and its read-only mount at `mount_path`."""
    claim, _, sub_path = rest.partition("/")
    sub_path = sub_path.strip("/")
    if not _CLAIM_NAME.fullmatch(claim):
        raise StorageUriError(
            f"storageUri {storage_uri!r}: {claim!r} is not a PersistentVolumeClaim name; "
            "use pvc://<claim>/<path>"
        )
    if ".." in sub_path.split("/"):
        raise StorageUriError(f"storageUri {storage_uri!r}: the path in the claim must not contain '..'")
    mount: dict[str, Any] = {"name": volume_name, "mountPath": mount_path, "readOnly": True}
    if sub_path:
        mount["subPath"] = sub_path
    volume = {"name": volume_name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
    return volume, mount


def _storage_spec_plan(
    storage: StorageSpec, storage_uri: str | None, annotations: Mapping[str, str], config: OperatorConfig
) -> StoragePlan:
    """KServe's StorageSpec: the initializer gets the storage-config entry by secretKeyRef (never read
    here) and storage.parameters as STORAGE_OVERRIDE_CONFIG, and resolves `<scheme-placeholder>://<path>`
    to s3://<bucket>/<path> from them. An explicit key must exist (the pod waits with the kubelet's
    message until it does); a default key may be missing, as in KServe. The ServiceAccount's credentials
    are not added: the entry replaces them."""
    names = [annotations.get(p + STORAGE_SECRET_ANNOTATION) for p in ANNOTATION_PREFIXES]
    secret = next((name for name in names if name), STORAGE_SECRET)
    if not _SECRET_NAME.fullmatch(secret):
        raise StorageUriError(
            f"annotation serving.kserve.io/{STORAGE_SECRET_ANNOTATION}: {secret!r} is not a Secret name"
        )
    parameters = storage.parameters or {}
    default_key = (
        f"{DEFAULT_STORAGE_KEY}_{parameters['type']}" if "type" in parameters else DEFAULT_STORAGE_KEY
    )
    reference = {"name": secret, "key": storage.key or default_key, "optional": storage.key is None}
    env: list[dict[str, Any]] = [{"name": STORAGE_CONFIG_ENV, "valueFrom": {"secretKeyRef": reference}}]
    if parameters:
        override = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
        env.append({"name": STORAGE_OVERRIDE_ENV, "value": override})
    source = storage_uri or f"{PLACEHOLDER_SCHEME}://{(storage.path or '').lstrip('/')}"
    volume = {"name": DOWNLOAD_VOLUME, "emptyDir": {}}
    initializer = _initializer(config, [source, MODEL_DIR], [_download_mount(MODEL_DIR)], env, [])
    return StoragePlan((initializer,), (volume,), (_download_mount(MODEL_DIR, read_only=True),))


def _storage_uris_plan(
    entries: Sequence[StorageUri], service_account: Mapping[str, Any], config: OperatorConfig
) -> StoragePlan:
    """KServe's storageUris: one initializer downloads every non-claim entry in order (args: uri, path,
    uri, path, ...) into one emptyDir mounted at the common parent of their mountPaths; each claim is
    mounted read-only at its own mountPath (with the URI's path as subPath). The model directory is the
    common parent of every mountPath."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    args: list[str] = []
    downloads: list[str] = []
    for index, entry in enumerate(entries):
        path = posixpath.normpath(entry.mount_path)
        scheme, separator, rest = entry.uri.partition("://")
        if scheme == "pvc" and separator:
            volume, mount = _claim(entry.uri, rest, f"{PVC_VOLUME}-{index}", path)
            volumes.append(volume)
            mounts.append(mount)
        else:
            _check_download(entry.uri, "storageUris[].uri", STORAGE_URIS_CHOICES)
            args += [entry.uri, path]
            downloads.append(path)
    every_path = [mount["mountPath"] for mount in mounts] + downloads
    common = posixpath.commonpath(every_path) if every_path else MODEL_DIR
    model_dir = common if common != "/" else MODEL_DIR
    if not downloads:
        return StoragePlan((), tuple(volumes), tuple(mounts), model_dir=model_dir)
    root = posixpath.commonpath(downloads)
    if root == "/":
        raise StorageUriError(
            f"storageUris: the mountPaths {', '.join(downloads)} share no parent directory but '/', where "
            "their download volume would be mounted; put them under one directory, such as /mnt/models"
        )
    taken = [root] + [mount["mountPath"] for mount in mounts]
    clash = next((path for path in taken if taken.count(path) > 1), None)
    if clash:
        raise StorageUriError(
            f"storageUris: two volumes would be mounted at {clash}; give each pvc:// entry its own "
            "mountPath, apart from the directory the downloads share"
        )
    schemes = {uri.partition("://")[0] for uri in args[::2]}
    download = _download_plan(args, root, schemes, service_account, config)
    return StoragePlan(
        download.init_containers,
        download.volumes + tuple(volumes),
        download.model_mounts + tuple(mounts),
        model_dir=model_dir,
    )


def _download_mount(path: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": DOWNLOAD_VOLUME, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _initializer(
    config: OperatorConfig,
    args: list[str],
    mounts: list[dict[str, Any]],
    env: list[dict[str, Any]],
    env_from: list[dict[str, Any]],
) -> dict[str, Any]:
    """The storage-initializer container: `args` are its (uri, destination) pairs."""
    container: dict[str, Any] = {
        "name": INITIALIZER,
        "image": config.storage_initializer.image,
        "args": args,
        "resources": {
            "requests": {"cpu": "100m", "memory": "100Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_ID,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = sorted(env, key=lambda entry: str(entry["name"]))
    if env_from:
        container["envFrom"] = env_from
    return container


def _download_plan(
    args: list[str],
    root: str,
    schemes: set[str],
    service_account: Mapping[str, Any],
    config: OperatorConfig,
) -> StoragePlan:
    """An initializer fetching `args` into an emptyDir at `root`, with the ServiceAccount's credentials
    for `schemes`."""
    secrets = _secret_names(service_account)
    env = _s3_env(service_account) if "s3" in schemes else {}
    volumes: list[dict[str, Any]] = [{"name": DOWNLOAD_VOLUME, "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [_download_mount(root)]
    if "gs" in schemes and secrets:
        volumes.append({"name": GCS_VOLUME, "secret": {"secretName": secrets[0], "optional": True}})
        mounts.append({"name": GCS_VOLUME, "mountPath": GCS_DIR, "readOnly": True})
        env["GOOGLE_APPLICATION_CREDENTIALS"] = f"{GCS_DIR}/{GCS_KEY}"
    initializer = _initializer(
        config,
        args,
        mounts,
        [{"name": name, "value": value} for name, value in env.items()],
        [{"secretRef": {"name": name, "optional": True}} for name in secrets],
    )
    return StoragePlan((initializer,), tuple(volumes), (_download_mount(root, read_only=True),))


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
