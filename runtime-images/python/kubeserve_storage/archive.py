"""Unpack a downloaded .tar.gz, .tgz or .zip, refusing any archive with a member that escapes."""

import posixpath
import tarfile
import zipfile
from pathlib import Path

from kubeserve_storage.errors import StorageError
from kubeserve_storage.paths import below

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
                        below(name, f"archive member {name!r}")
                    zipped.extractall(root)
            else:
                with tarfile.open(fileobj=stream, mode="r:gz") as tarred:
                    for member in tarred.getmembers():
                        _check_member(member)
                    # The "data" filter checks paths and links again, and drops owners and special modes.
                    tarred.extractall(root, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
            raise StorageError(f"{archive.name} is not a readable archive: {error}") from error
    if not any(root.iterdir()):
        raise StorageError(f"{archive.name} is an empty archive")


def _check_member(member: tarfile.TarInfo) -> None:
    what = f"archive member {member.name!r}"
    below(member.name, what)
    if member.issym():  # a symbolic link's target is relative to the link's own directory
        below(posixpath.join(posixpath.dirname(member.name), member.linkname), what)
    elif member.islnk():  # a hard link's target is relative to the archive's root
        below(member.linkname, what)
    elif not (member.isfile() or member.isdir()):
        raise StorageError(f"{what} is a device or pipe; refusing the archive")
