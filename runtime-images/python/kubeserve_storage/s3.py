"""s3:// downloads with boto3, configured only from the environment (see the package docstring)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    SSLError,
)
from urllib3.exceptions import InsecureRequestWarning

from kubeserve_storage import bucket
from kubeserve_storage.env import flag
from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import BucketUri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_DENIED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)
_MISSING = frozenset({"404", "NoSuchBucket", "NoSuchKey"})


@dataclass(frozen=True)
class S3Settings:
    """How to reach the bucket, and the keys to sign with; without keys, boto3's own chain finds them
    (its web identity token, config files)."""

    endpoint_url: str | None
    region: str | None
    verify: bool | str
    virtual_host_style: bool
    anonymous: bool
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3Settings:
        """Read the same variables KServe's storage initializer reads, so the same Secrets work."""
        use_https = flag(environ, "S3_USE_HTTPS", default=True)
        endpoint = environ.get("AWS_ENDPOINT_URL") or environ.get("S3_ENDPOINT") or None
        if endpoint and "://" not in endpoint:
            endpoint = f"{'https' if use_https else 'http'}://{endpoint}"
        verify: bool | str = flag(environ, "S3_VERIFY_SSL", default=True)
        if verify and environ.get("AWS_CA_BUNDLE"):
            verify = environ["AWS_CA_BUNDLE"]
        return cls(
            endpoint_url=endpoint,
            region=environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or None,
            verify=verify,
            # A custom endpoint (MinIO, Ceph, moto) usually serves path-style buckets only.
            virtual_host_style=flag(environ, "S3_USER_VIRTUAL_BUCKET", default=endpoint is None),
            anonymous=flag(environ, "awsAnonymousCredential", default=False),
            access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=environ.get("AWS_SESSION_TOKEN") or None,
        )

    def client(self) -> S3Client:
        """A client that fails within seconds, not minutes, when the endpoint is wrong."""
        config = Config(
            s3={"addressing_style": "virtual" if self.virtual_host_style else "path"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
            signature_version=UNSIGNED if self.anonymous else None,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            verify=self.verify,
            config=config,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
        )


def download(uri: BucketUri, into: Path, environ: Mapping[str, str]) -> None:
    """Download every object the URI names into `into`, configured by `environ` (see the package
    docstring)."""
    settings = S3Settings.from_env(environ)
    client = settings.client()
    with warnings.catch_warnings():
        if settings.verify is False:
            # Asked for with S3_VERIFY_SSL=0: say so once, not in a warning on every request.
            log.warning(
                "not verifying the TLS certificate of %s (S3_VERIFY_SSL=0)", settings.endpoint_url or "S3"
            )
            warnings.simplefilter("ignore", InsecureRequestWarning)
        _download_all(uri, into, settings, client)


def _download_all(uri: BucketUri, into: Path, settings: S3Settings, client: S3Client) -> None:
    """List, plan and fetch, translating boto's errors into what to fix."""
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=uri.prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        planned = bucket.plan(uri, keys)
        bucket.download_all(
            planned, into, lambda key, target: client.download_file(uri.bucket, key, str(target))
        )
    except ClientError as error:
        raise StorageError(_explain(uri, error)) from error
    except NoCredentialsError as error:
        raise StorageError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or awsAnonymousCredential=true for a public bucket)"
        ) from error
    except SSLError as error:
        raise StorageError(
            f"TLS to {settings.endpoint_url or 'S3'} failed ({error}); "
            "set AWS_CA_BUNDLE to the endpoint's CA, or S3_VERIFY_SSL=0"
        ) from error
    except ConnectionError as error:
        raise StorageError(f"cannot reach {settings.endpoint_url or 'S3'}: {error}") from error
    except BotoCoreError as error:
        raise StorageError(f"S3 client error: {error}") from error


def _explain(uri: BucketUri, error: ClientError) -> str:
    details = error.response.get("Error", {})
    code = details.get("Code", "?")
    if code in _DENIED:
        return (
            f"access denied (HTTP 403, {code}) to bucket {uri.bucket!r}: check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and the bucket's policy"
        )
    if code == "NoSuchBucket":
        return f"bucket {uri.bucket!r} does not exist (HTTP 404)"
    if code in _MISSING:
        return f"not found (HTTP 404, {code}) under {uri.prefix!r} in bucket {uri.bucket!r}"
    return f"S3 error {code}: {details.get('Message', error)}"
