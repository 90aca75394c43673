"""What S3 and GCS share: which objects a prefix names, and where each lands under the destination."""

from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from kubeserve_storage.errors import StorageError
from kubeserve_storage.paths import below
from kubeserve_storage.uri import BucketUri


def plan(uri: BucketUri, keys: Iterable[str]) -> dict[str, PurePosixPath]:
    """Map each object key the URI names to its path relative to the destination.

    `bucket/models/iris` names the object `models/iris` itself (saved under its base name) or
    everything below `models/iris/`, but not `models/iris2/`. A key whose path would land outside
    the destination (`..`) is refused, and so is one that names the destination itself.
    """
    exact = uri.prefix
    under = f"{uri.prefix.rstrip('/')}/" if uri.prefix else ""
    planned: dict[str, PurePosixPath] = {}
    for key in keys:
        if key.endswith("/"):  # a console-made "folder" marker, no data
            continue
        if exact and key == exact:
            name = PurePosixPath(key).name
        elif key.startswith(under):
            name = key[len(under) :]
        else:
            continue
        relative = below(name, f"object key {key!r}")
        if not relative.parts:
            raise StorageError(f"object key {key!r} names the destination itself, not a file in it")
        planned[key] = relative
    if not planned and uri.prefix:
        raise StorageError(
            f"no objects under prefix {uri.prefix!r} of bucket {uri.bucket!r}: is the path right?"
        )
    if not planned:
        raise StorageError(f"bucket {uri.bucket!r} is empty")
    return planned


def download_all(planned: dict[str, PurePosixPath], into: Path, get: Callable[[str, Path], None]) -> None:
    """Fetch every planned object with `get(key, target)`, creating directories as needed."""
    for key, relative in planned.items():
        target = into.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        get(key, target)
