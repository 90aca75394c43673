"""Where a name chosen by the source lands under the destination, refusing one that would land outside it.

Object keys, archive members and link targets are free-form strings written by whoever controls the
bucket or made the archive: `../../etc/x` and `/etc/x` are legal in all of them. Every backend maps a
name to a local path through `below`, so one rule decides, before anything is written.
"""

import posixpath
from pathlib import PurePosixPath

from kubeserve_storage.errors import StorageError


def below(name: str, what: str) -> PurePosixPath:
    """`name` as a normalized path relative to the destination (`.` for the destination itself).

    Refused with a StorageError that names `what` (for example `object key 'a/../../b'`) when the
    name is absolute or its `..` segments climb above the destination. The check is on the text
    alone, so it holds for a destination that does not exist yet.
    """
    normal = posixpath.normpath(name)
    if posixpath.isabs(normal) or normal == posixpath.pardir or normal.startswith(f"{posixpath.pardir}/"):
        raise StorageError(f"{what} would be written outside the destination; refusing it")
    return PurePosixPath(normal)
