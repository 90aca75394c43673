"""Parse a storageUri into what one backend needs, refusing a bad one before any network call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from kubeserve_storage.errors import StorageError

ALLOWED = "s3://, gs://, https://, http://, pvc://, file:// or a local path"


@dataclass(frozen=True)
class BucketUri:
    """An object store prefix: every object under `prefix` (or the one object named `prefix`)."""

    scheme: Literal["s3", "gs"]
    bucket: str
    prefix: str


@dataclass(frozen=True)
class HttpUri:
    """One file served over HTTP(S); `filename` is the last segment of its path."""

    url: str
    filename: str


@dataclass(frozen=True)
class LocalUri:
    """A file or directory on a filesystem the container can already see."""

    path: Path


@dataclass(frozen=True)
class PvcUri:
    """A PersistentVolumeClaim, which the operator mounts: nothing to download."""

    claim: str
    path: str


Source = BucketUri | HttpUri | LocalUri | PvcUri


def parse(uri: str) -> Source:
    """Split `uri` by scheme; a string without `scheme://` is a local path."""
    if "://" not in uri:
        if not uri.strip():
            raise StorageError(f"the URI is empty; use {ALLOWED}")
        return LocalUri(Path(uri))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    match scheme:
        case "s3" | "gs":
            if not parts.netloc:
                raise StorageError(f"{scheme}:// needs a bucket, as in {scheme}://bucket/path/to/model")
            return BucketUri(scheme, parts.netloc, parts.path.lstrip("/"))
        case "http" | "https":
            if not parts.netloc:
                raise StorageError(f"{scheme}:// needs a host, as in {scheme}://host/model.tar.gz")
            filename = PurePosixPath(unquote(parts.path)).name
            if not filename or filename in {".", ".."}:
                raise StorageError("the URL's path must name a file, as in https://host/model.tar.gz")
            return HttpUri(uri, filename)
        case "pvc":
            if not parts.netloc:
                raise StorageError("pvc:// needs a claim name, as in pvc://claim/path/to/model")
            return PvcUri(parts.netloc, parts.path.lstrip("/"))
        case "file":
            if parts.netloc not in {"", "localhost"}:
                raise StorageError("file:// URIs name a local path, as in file:///models/iris")
            return LocalUri(Path(unquote(parts.path)))
        case _:
            raise StorageError(f"unsupported scheme {scheme + '://'!r}; use {ALLOWED}")
