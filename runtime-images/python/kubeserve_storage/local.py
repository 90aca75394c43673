"""Local paths and file:// URIs: copy a file or a directory tree from a filesystem already mounted."""

import shutil
from pathlib import Path

from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import LocalUri


def download(uri: LocalUri, into: Path) -> None:
    """Copy the file into `into`, or the directory's contents (following symlinks) into `into`."""
    source = uri.path.absolute()
    if not source.exists():
        raise StorageError(f"{source} does not exist")
    if source.is_dir():
        if into.resolve().is_relative_to(source.resolve()):
            raise StorageError(f"the destination is inside the source directory {source}")
        if not any(source.iterdir()):
            raise StorageError(f"directory {source} is empty")
        shutil.copytree(source, into, dirs_exist_ok=True)
    else:
        shutil.copy2(source, into / source.name)
