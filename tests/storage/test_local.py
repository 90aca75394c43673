"""Local paths and file:// URIs, and the atomic publish every scheme goes through."""

import stat
from pathlib import Path

import pytest

from kubeserve_storage import StorageError, fetch
from tests.storage.model_files import MODEL, tree


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    for name, content in MODEL.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_directory_is_copied(model_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnt" / "models"
    assert fetch(str(model_dir), dest) is True
    assert tree(dest) == MODEL
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755  # readable by a server running as another user


def test_file_uri_names_one_file(model_dir: Path, tmp_path: Path) -> None:
    fetch(f"file://{model_dir / 'model.joblib'}", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


def test_existing_directory_gets_same_names_replaced_others_kept(model_dir: Path, tmp_path: Path) -> None:
    """An emptyDir at /mnt/models cannot be renamed over, and a re-run must converge on the same content."""
    dest = tmp_path / "dest"
    (dest / "meta").mkdir(parents=True)
    (dest / "meta" / "old.json").write_bytes(b"stale")
    (dest / "model.joblib").write_bytes(b"old weights")
    (dest / "README").write_bytes(b"keep me")
    fetch(str(model_dir), dest)
    assert tree(dest) == MODEL | {"README": b"keep me"}
    fetch(str(model_dir), dest)
    assert tree(dest) == MODEL | {"README": b"keep me"}
    assert not [path for path in dest.iterdir() if path.name.startswith(".")]


def test_staging_left_by_a_killed_run_is_removed(model_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    leftover = dest / ".dest.partial-killed"
    leftover.mkdir()
    (leftover / "model.joblib").write_bytes(b"half")
    fetch(str(model_dir), dest)
    assert tree(dest) == MODEL


def test_pvc_needs_no_download(tmp_path: Path) -> None:
    assert fetch("pvc://claim/models/iris", tmp_path / "dest") is False
    assert not (tmp_path / "dest").exists()


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="absent does not exist"):
        fetch(str(tmp_path / "absent"), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_empty_source_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="empty is empty"):
        fetch(str(tmp_path / "empty"), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_destination_inside_the_source_is_refused(model_dir: Path) -> None:
    with pytest.raises(StorageError, match="destination is inside the source"):
        fetch(str(model_dir), model_dir / "copy")


def test_destination_that_is_a_file(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "dest").write_bytes(b"")
    with pytest.raises(StorageError, match="exists and is not a directory"):
        fetch(str(model_dir), tmp_path / "dest")


def test_unwritable_destination(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot write beside"):
        fetch(str(model_dir), tmp_path / "blocker" / "dest")
