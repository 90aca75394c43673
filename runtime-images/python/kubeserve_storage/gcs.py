"""gs:// downloads with google-cloud-storage: a service-account key if one is given, else anonymous."""

import os
from pathlib import Path
from typing import Any

import requests
from google.api_core.exceptions import Forbidden, GoogleAPICallError, NotFound
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage  # type: ignore[import-untyped]

from kubeserve_storage import bucket
from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import BucketUri


def client() -> Any:
    """A client for the key in GOOGLE_APPLICATION_CREDENTIALS, or an anonymous one for public buckets.

    With STORAGE_EMULATOR_HOST set, the library talks to that emulator without credentials.
    """
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client()
    return storage.Client.create_anonymous_client()


def download(uri: BucketUri, into: Path) -> None:
    """Download every object the URI names into `into`, translating the library's errors into what to fix."""
    try:
        gcs = client()
        keys = [blob.name for blob in gcs.list_blobs(uri.bucket, prefix=uri.prefix)]
        planned = bucket.plan(uri, keys)
        source = gcs.bucket(uri.bucket)
        bucket.download_all(planned, into, lambda key, target: source.blob(key).download_to_filename(target))
    except Forbidden as error:
        raise StorageError(
            f"access denied (HTTP 403) to bucket {uri.bucket!r}: mount a key that may read it and point "
            "GOOGLE_APPLICATION_CREDENTIALS at it"
        ) from error
    except NotFound as error:
        raise StorageError(f"not found (HTTP 404): bucket {uri.bucket!r} or an object in it") from error
    except GoogleAPICallError as error:
        raise StorageError(f"GCS error: {error.message}") from error
    except GoogleAuthError as error:
        raise StorageError(f"GCS credentials are unusable: {error}") from error
    except requests.RequestException as error:
        raise StorageError(f"cannot reach GCS: {error}") from error
