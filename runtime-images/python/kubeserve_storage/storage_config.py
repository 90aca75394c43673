"""KServe's storage-config entries: the bucket that an InferenceService's `storage` spec points into.

The operator never reads the `storage-config` Secret. It hands the pod a secretKeyRef to one of its
keys, so the entry arrives here as STORAGE_CONFIG (a JSON object such as {"type": "s3", "bucket": ...,
"endpoint_url": ..., "access_key_id": ..., "secret_access_key": ...}), with the spec's
`storage.parameters` laid over it as STORAGE_OVERRIDE_CONFIG. The entry's S3 settings become the
variables the s3 backend reads, and a `<scheme-placeholder>://<path>` URI becomes s3://<bucket>/<path>.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from kubeserve_storage.errors import StorageError

CONFIG_ENV = "STORAGE_CONFIG"
OVERRIDE_ENV = "STORAGE_OVERRIDE_CONFIG"
PLACEHOLDER = "<scheme-placeholder>://"
"""The operator's stand-in for the scheme and bucket, which only the entry knows."""
SUPPORTED_TYPES = ("s3",)
S3_ENTRY_ENV = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_DEFAULT_REGION",
    "ca_bundle": "AWS_CA_BUNDLE",
    "verify_ssl": "S3_VERIFY_SSL",
    "anonymous": "awsAnonymousCredential",
}
"""Entry key (KServe's spelling) to the variable of the package's env contract it sets."""

log = logging.getLogger("kubeserve_storage")


def resolve(uri: str, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The URI to fetch and the environment to fetch it with, after the storage-config entry, if any.

    Without an entry both come back unchanged, except that a placeholder URI cannot be resolved.
    """
    entry = _entry(environ)
    if not entry:
        if uri.startswith(PLACEHOLDER):
            raise StorageError(
                f"storage.path needs a storage-config entry, and there is none: {CONFIG_ENV} is unset "
                "(the Secret has no key `default`, or no `default_<type>` for storage.parameters.type) "
                "and storage.parameters name no type and bucket; add the key to the storage-config Secret "
                "or set storage.key"
            )
        return uri, dict(environ)
    kind = entry.get("type")
    if kind not in SUPPORTED_TYPES:
        raise StorageError(
            f"the storage-config entry's type is {kind!r}; Kubeserve's storage initializer reads entries "
            f'of type {", ".join(SUPPORTED_TYPES)} only (set "type": "s3" in the entry or in '
            "storage.parameters)"
        )
    if uri.startswith(PLACEHOLDER):
        bucket = entry.get("bucket", "")
        if not bucket or "/" in bucket:
            raise StorageError(
                f'the storage-config entry names no usable bucket ({bucket!r}); set "bucket" in the '
                "entry or in storage.parameters"
            )
        resolved = f"s3://{bucket}/{uri.removeprefix(PLACEHOLDER)}"
        log.info("%s is %s, from the storage-config entry", uri, resolved)
        uri = resolved
    overlay = {variable: entry[key] for key, variable in S3_ENTRY_ENV.items() if key in entry}
    return uri, {**environ, **overlay}


def _entry(environ: Mapping[str, str]) -> dict[str, str]:
    """The entry (STORAGE_CONFIG) with the overrides (STORAGE_OVERRIDE_CONFIG) laid over it."""
    return {**_json_object(environ, CONFIG_ENV), **_json_object(environ, OVERRIDE_ENV)}


def _json_object(environ: Mapping[str, str], name: str) -> dict[str, str]:
    """A JSON object of scalars from `name`, as text. Error messages never quote the value: it holds
    credentials."""
    raw = environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StorageError(f"{name} is not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(loaded, dict):
        raise StorageError(f"{name} must be a JSON object of settings, not {type(loaded).__name__}")
    return {key: _text(name, key, value) for key, value in loaded.items()}


def _text(name: str, key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise StorageError(f"{name}: setting {key!r} must be a string, a number or a boolean")
