"""https:// and http:// against a real local server: single files, archives, errors, TLS verification."""

from pathlib import Path

import pytest

from kubeserve_storage import StorageError, fetch
from tests.storage.conftest import Certificate, FileServer
from tests.storage.model_files import MODEL, tar_gz, tree, zip_file


def test_single_file(http_server: FileServer, tmp_path: Path) -> None:
    (http_server.root / "model.joblib").write_bytes(b"weights")
    fetch(f"{http_server.url}/model.joblib", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


@pytest.mark.parametrize("name", ["model.tar.gz", "model.tgz", "model.zip"])
def test_archive_is_unpacked(http_server: FileServer, tmp_path: Path, name: str) -> None:
    build = zip_file if name.endswith(".zip") else tar_gz
    build(http_server.root / name, MODEL)
    fetch(f"{http_server.url}/{name}?version=1", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("forbidden/model.joblib", "access denied (HTTP 403)"),
        ("absent/model.joblib", "not found (HTTP 404)"),
    ],
)
def test_error_status(http_server: FileServer, tmp_path: Path, path: str, says: str) -> None:
    with pytest.raises(StorageError) as raised:
        fetch(f"{http_server.url}/{path}", tmp_path / "dest")
    assert says in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_escaping_archive_over_http_writes_nothing(http_server: FileServer, tmp_path: Path) -> None:
    tar_gz(http_server.root / "evil.tar.gz", {"model.joblib": b"w", "../../escaped": b"gotcha"})
    with pytest.raises(StorageError, match="would be written outside the destination"):
        fetch(f"{http_server.url}/evil.tar.gz", tmp_path / "dest")
    assert list(tmp_path.rglob("*")) == []


def test_download_cut_off_midway_never_looks_complete(http_server: FileServer, tmp_path: Path) -> None:
    """The server promises 1 MB, sends half and hangs up: no destination, no staging left."""
    dest = tmp_path / "dest"
    with pytest.raises(StorageError, match="download failed"):
        fetch(f"{http_server.url}/truncated/1000000", dest)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_download_leaves_the_previous_model(http_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "1000000").write_bytes(b"the complete old file")
    with pytest.raises(StorageError):
        fetch(f"{http_server.url}/truncated/1000000", dest)
    assert tree(dest) == {"1000000": b"the complete old file"}
    assert [path.name for path in dest.iterdir()] == ["1000000"]


def test_https_verified_against_a_given_ca(
    https_server: FileServer, self_signed: Certificate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (https_server.root / "model.joblib").write_bytes(b"weights")
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed.cert))
    fetch(f"{https_server.url}/model.joblib", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


def test_https_untrusted_certificate_is_refused(https_server: FileServer, tmp_path: Path) -> None:
    (https_server.root / "model.joblib").write_bytes(b"weights")
    with pytest.raises(StorageError) as raised:
        fetch(f"{https_server.url}/model.joblib", tmp_path / "dest")
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert "set SSL_CERT_FILE to its CA, or HTTPS_VERIFY_SSL=0" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_https_verification_off(
    https_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (https_server.root / "model.joblib").write_bytes(b"weights")
    monkeypatch.setenv("HTTPS_VERIFY_SSL", "0")
    fetch(f"{https_server.url}/model.joblib", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


def test_unreadable_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(StorageError, match="is not a readable CA bundle"):
        fetch("https://127.0.0.1:1/model.joblib", tmp_path / "dest")
