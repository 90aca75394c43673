"""The files of a small model, archives of them (hostile ones too), and reading a tree back."""

import io
import tarfile
import zipfile
from pathlib import Path

MODEL = {"model.joblib": b"weights", "meta/settings.json": b"{}"}
"""A model directory by relative path: a file at the top and one in a subdirectory."""


def tar_gz(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A gzipped tar of `files` (name -> content) and symlinks (name -> target), names taken verbatim."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def zip_file(path: Path, files: dict[str, bytes]) -> Path:
    """A zip of `files` (name -> content), names taken verbatim."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by its POSIX path relative to it: what a model server would see."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }
