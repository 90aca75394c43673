"""gs:// against a GCS emulator on 127.0.0.1 (gcp-storage-emulator, not Google), via STORAGE_EMULATOR_HOST.

The emulator does not check credentials, so the 403 path uses the local HTTP server, which answers
403 to the bucket listing of a bucket named `forbidden`. Google's own endpoint is not reachable from
these machines, so the anonymous client and service-account keys are not exercised end to end.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gcp_storage_emulator.server import create_server

from kubeserve.devcluster.ports import free_port
from kubeserve_storage import StorageError, fetch
from tests.storage.conftest import FileServer
from tests.storage.model_files import MODEL, tar_gz, tree

# google-api-core warns at import when grpcio is installed (the model server's extra) without grpcio-status.
pytestmark = pytest.mark.filterwarnings("ignore:Please install grpcio-status:ImportWarning")


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    port = free_port()  # the emulator cannot report the port it bound, so pick a free one
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Bucket `models` on the emulator, with the initializer's env pointing at it; removed after the test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_url)
    from kubeserve_storage.gcs import client

    gcs = client()
    bucket = gcs.create_bucket("models")
    yield bucket
    for blob in gcs.list_blobs("models"):
        blob.delete()
    bucket.delete()


def test_prefix_fetches_everything_below_it_and_nothing_beside(gcs: Any, tmp_path: Path) -> None:
    for name, content in MODEL.items():
        gcs.blob(f"sklearn/iris/{name}").upload_from_string(content)
    gcs.blob("sklearn/iris2/model.joblib").upload_from_string(b"another model")
    fetch("gs://models/sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_one_archive_object_is_unpacked(gcs: Any, tmp_path: Path) -> None:
    gcs.blob("packed/model.tgz").upload_from_filename(str(tar_gz(tmp_path / "model.tgz", MODEL)))
    fetch("gs://models/packed/model.tgz", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_empty_prefix(gcs: Any, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no objects under prefix 'sklearn/absent' of bucket 'models'"):
        fetch("gs://models/sklearn/absent", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_missing_bucket(gcs: Any, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"not found \(HTTP 404\): bucket 'absent'"):
        fetch("gs://absent/model", tmp_path / "dest")


def test_access_denied(http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", http_server.url)
    with pytest.raises(StorageError) as raised:
        fetch("gs://forbidden/model", tmp_path / "dest")
    assert "access denied (HTTP 403) to bucket 'forbidden'" in str(raised.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_unusable_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that is not a service-account key fails before any request, naming the credentials."""
    key = tmp_path / "gcloud-application-credentials.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    with pytest.raises(StorageError, match="GCS credentials are unusable"):
        fetch("gs://models/sklearn/iris", tmp_path / "dest")
