"""Parse a storageUri into what one backend needs, refusing a bad one before any network call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from kubeserve_storage.errors import StorageError

ALLOWED = "s3://, gs://, https://, http://, hf://, pvc://, file:// or a local path"

# The Hub's own rule for a model id: <org>/<name>, word characters, "-" and ".", no "--" or "..".
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", re.ASCII)


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
class HfUri:
    """A Hugging Face Hub model repository at `revision` (branch, tag or commit; None: the default branch)."""

    repo_id: str
    revision: str | None


@dataclass(frozen=True)
class LocalUri:
    """A file or directory on a filesystem the container can already see."""

    path: Path


@dataclass(frozen=True)
class PvcUri:
    """A PersistentVolumeClaim, which the operator mounts: nothing to download."""

    claim: str
    path: str


Source = BucketUri | HttpUri | HfUri | LocalUri | PvcUri


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
            return BucketUri(scheme, parts.netloc, _without_parent(scheme, parts.path.lstrip("/")))
        case "http" | "https":
            if not parts.netloc:
                raise StorageError(f"{scheme}:// needs a host, as in {scheme}://host/model.tar.gz")
            filename = PurePosixPath(unquote(parts.path)).name
            if not filename or filename in {".", ".."}:
                raise StorageError("the URL's path must name a file, as in https://host/model.tar.gz")
            return HttpUri(uri, filename)
        case "hf":
            return _hf(uri.partition("://")[2])
        case "pvc":
            if not parts.netloc:
                raise StorageError("pvc:// needs a claim name, as in pvc://claim/path/to/model")
            return PvcUri(parts.netloc, _without_parent(scheme, parts.path.lstrip("/")))
        case "file":
            if parts.netloc not in {"", "localhost"}:
                raise StorageError("file:// URIs name a local path, as in file:///models/iris")
            return LocalUri(Path(unquote(parts.path)))
        case _:
            raise StorageError(f"unsupported scheme {scheme + '://'!r}; use {ALLOWED}")


def _without_parent(scheme: str, path: str) -> str:
    """The path of a bucket or claim URI, refused with a `..` segment.

    A store takes `models/../x` as a literal key, not as `x`: whoever writes one means to climb, or
    is mistaken, and a model path never needs it.
    """
    if ".." in path.split("/"):
        raise StorageError(
            f"{scheme}:// path {path!r} has a '..' segment; name the model by its full path, "
            f"as in {scheme}://{'claim' if scheme == 'pvc' else 'bucket'}/path/to/model"
        )
    return path


def _hf(rest: str) -> HfUri:
    """`<org>/<repo>[@<revision>]`; KServe's `<org>/<repo>:<revision>` spelling is accepted too."""
    repo_id, separator, revision = rest.partition("@")
    if not separator:
        repo_id, separator, revision = rest.partition(":")
    if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id:
        raise StorageError(
            f"{repo_id!r} is not a Hugging Face model id; use hf://<org>/<repo>[@<revision>], "
            "as in hf://my-org/my-model@main"
        )
    if separator and not revision.strip():
        raise StorageError(f"nothing after {separator!r}: name a branch, tag or commit, or leave it out")
    return HfUri(repo_id, revision or None)
