"""Fetch a URI into a model directory atomically: stage beside it, then move into place.

The slow, failure-prone part (the download and any unpacking) happens in a hidden staging
directory on the destination's own filesystem. Only a complete download is moved into place,
by rename, so a model server never sees half a model. When the destination does not exist yet,
the staging directory itself is renamed onto it in one step. When it exists (an emptyDir mounted
at /mnt/models cannot be renamed over), staging lives inside it and each top-level entry is
renamed in, replacing an entry of the same name and leaving others alone, so a re-run after a
pod restart converges on the same content.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from kubeserve_storage import archive, storage_config
from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import BucketUri, HfUri, HttpUri, LocalUri, PvcUri, Source, parse

log = logging.getLogger("kubeserve_storage")


def fetch(uri: str, dest: Path) -> bool:
    """Put the model at `uri` into the directory `dest`; raise StorageError saying why it cannot.

    Returns False when there was nothing to download (pvc://, which the operator mounts). A
    storage-config entry in the environment (see `storage_config`) gives the bucket of a placeholder
    URI and the S3 settings.
    """
    uri, environ = storage_config.resolve(uri, os.environ)
    source = parse(uri)
    if isinstance(source, PvcUri):
        log.info(
            "%s: the operator mounts claim %r as the model directory; nothing to download", uri, source.claim
        )
        return False
    dest = dest.absolute()
    if dest.exists() and not dest.is_dir():
        raise StorageError(f"destination {dest} exists and is not a directory")
    staging_parent = dest if dest.is_dir() else dest.parent
    prefix = f".{dest.name}.partial-"
    try:
        staging_parent.mkdir(parents=True, exist_ok=True)
        for stale in staging_parent.glob(f"{prefix}*"):  # left by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=staging_parent))
    except OSError as error:
        raise StorageError(f"cannot write beside {dest}: {error}") from error
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a server running as another user
        _download(source, staging, environ)
        entries = list(staging.iterdir())
        if len(entries) == 1 and entries[0].is_file() and archive.is_archive(entries[0]):
            archive.unpack(entries[0])
        files = [path for path in staging.rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in files)
        log.info("fetched %d file%s, %d bytes", len(files), "" if len(files) == 1 else "s", size)
        _publish(staging, dest)
        return True
    except OSError as error:
        raise StorageError(f"filesystem error: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(source: Source, into: Path, environ: Mapping[str, str]) -> None:
    """Hand the source to its backend; each imports its SDK only when its scheme is used."""
    match source:
        case BucketUri(scheme="s3"):
            from kubeserve_storage import s3

            s3.download(source, into, environ)
        case BucketUri():
            from kubeserve_storage import gcs

            gcs.download(source, into)
        case HttpUri():
            from kubeserve_storage import web

            web.download(source, into)
        case HfUri():
            from kubeserve_storage import hf

            hf.download(source, into)
        case LocalUri():
            from kubeserve_storage import local

            local.download(source, into)


def _publish(staging: Path, dest: Path) -> None:
    if not dest.exists():
        staging.rename(dest)
        return
    for entry in staging.iterdir():
        target = dest / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)
