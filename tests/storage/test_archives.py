"""Archives are unpacked in place, and one with a member escaping the destination writes nothing."""

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kubeserve_storage import StorageError, fetch
from tests.storage.model_files import MODEL, tar_gz, tree, zip_file


@pytest.mark.parametrize("name", ["model.tar.gz", "model.tgz"])
def test_tar_gz_is_unpacked(tmp_path: Path, name: str) -> None:
    source = tar_gz(tmp_path / name, MODEL, links={"latest.joblib": "model.joblib"})
    fetch(str(source), tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL | {"latest.joblib": b"weights"}
    assert os.readlink(tmp_path / "dest" / "latest.joblib") == "model.joblib"


def test_zip_is_unpacked(tmp_path: Path) -> None:
    fetch(str(zip_file(tmp_path / "model.zip", MODEL)), tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_member_named_like_the_archive(tmp_path: Path) -> None:
    """The archive is gone before its members land, so one of the same name is no clash."""
    fetch(str(tar_gz(tmp_path / "model.tgz", {"model.tgz": b"inner"})), tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.tgz": b"inner"}


@pytest.mark.parametrize(
    ("build", "member"),
    [
        (lambda path: tar_gz(path / "m.tar.gz", {"ok.txt": b"1", "../escaped.txt": b"2"}), "../escaped.txt"),
        (lambda path: tar_gz(path / "m.tar.gz", {"a/../../escaped.txt": b"2"}), "a/../../escaped.txt"),
        (lambda path: tar_gz(path / "m.tar.gz", {"/tmp/escaped.txt": b"2"}), "/tmp/escaped.txt"),
        (lambda path: tar_gz(path / "m.tar.gz", {}, links={"link": "../../etc/passwd"}), "link"),
        (lambda path: tar_gz(path / "m.tar.gz", {}, links={"abs": "/etc/passwd"}), "abs"),
        (lambda path: zip_file(path / "m.zip", {"ok.txt": b"1", "../escaped.txt": b"2"}), "../escaped.txt"),
        (lambda path: zip_file(path / "m.zip", {"/abs.txt": b"2"}), "/abs.txt"),
    ],
)
def test_escaping_member_is_refused_and_nothing_written(
    tmp_path: Path, build: Callable[[Path], Path], member: str
) -> None:
    source = build(tmp_path)
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(StorageError) as raised:
        fetch(str(source), dest)
    assert f"archive member {member!r} would be written outside the destination" in str(raised.value)
    assert not dest.exists()
    assert list((tmp_path / "deep").iterdir()) == []  # no staging directory left behind
    assert not (tmp_path / "escaped.txt").exists()


def test_escaping_member_leaves_existing_model_alone(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.joblib").write_bytes(b"old")
    with pytest.raises(StorageError):
        fetch(str(tar_gz(tmp_path / "m.tgz", {"model.joblib": b"new", "../x": b""})), dest)
    assert tree(dest) == {"model.joblib": b"old"}
    assert sorted(p.name for p in dest.iterdir()) == ["model.joblib"]


def test_corrupt_archive(tmp_path: Path) -> None:
    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"not gzip at all")
    with pytest.raises(StorageError, match=r"model\.tar\.gz is not a readable archive"):
        fetch(str(source), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_empty_archive(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"model\.zip is an empty archive"):
        fetch(str(zip_file(tmp_path / "model.zip", {})), tmp_path / "dest")


def test_archive_of_a_directory_as_dot(tmp_path: Path) -> None:
    """`tar -czf model.tgz -C model .` gives members `.` and `./model.joblib`: common, and inside."""
    source = tmp_path / "model"
    (source / "meta").mkdir(parents=True)
    for name, content in MODEL.items():
        (source / name).write_bytes(content)
    with tarfile.open(tmp_path / "model.tgz", "w:gz") as tar:
        tar.add(source, arcname=".")
    fetch(str(tmp_path / "model.tgz"), tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL
