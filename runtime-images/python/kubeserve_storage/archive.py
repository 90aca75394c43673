"""Unpack a downloaded .tar.gz, .tgz or .zip, refusing any archive with a member that escapes."""

import os
import tarfile
import zipfile
from pathlib import Path

from kubeserve_storage.errors import StorageError

SUFFIXES = (".tar.gz", ".tgz", ".zip")


def is_archive(path: Path) -> bool:
    """Whether the file's name says it is an archive the initializer unpacks."""
    return path.name.lower().endswith(SUFFIXES)


def unpack(archive: Path) -> None:
    """Replace `archive` by its contents, in its own directory.

    Every member is checked before anything is extracted, so a hostile archive writes nothing.
    The archive is unlinked once open, so a member named like the archive itself cannot clash.
    """
    root = archive.parent.resolve()
    with archive.open("rb") as stream:
        archive.unlink()
        try:
            if archive.name.lower().endswith(".zip"):
                with zipfile.ZipFile(stream) as zipped:
                    for name in zipped.namelist():
                        _check_inside(root, name, name)
                    zipped.extractall(root)
            else:
                with tarfile.open(fileobj=stream, mode="r:gz") as tarred:
                    for member in tarred.getmembers():
                        _check_member(root, member)
                    # The "data" filter checks paths and links again, and drops owners and special modes.
                    tarred.extractall(root, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
            raise StorageError(f"{archive.name} is not a readable archive: {error}") from error
    if not any(root.iterdir()):
        raise StorageError(f"{archive.name} is an empty archive")


def _check_member(root: Path, member: tarfile.TarInfo) -> None:
    _check_inside(root, member.name, member.name)
    if member.issym():
        _check_inside(root, os.path.join(os.path.dirname(member.name), member.linkname), member.name)
    elif member.islnk():
        _check_inside(root, member.linkname, member.name)
    elif not (member.isfile() or member.isdir()):
        raise StorageError(f"archive member {member.name!r} is a device or pipe; refusing the archive")


def _check_inside(root: Path, path: str, member: str) -> None:
    target = os.path.normpath(os.path.join(root, path))
    if os.path.isabs(path) or os.path.commonpath([root, target]) != str(root):
        raise StorageError(
            f"archive member {member!r} would be written outside the destination; refusing the archive"
        )
