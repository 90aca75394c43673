"""The server fetches its own model (STORAGE_URI, a runtime without a storage initializer): not ready
until the download is in place and loaded, its answers the model's own; a failed download stops the
server with the initializer's reason as its termination message."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubeserve.devcluster.ports import free_port
from tests.polling import eventually
from tests.server.conftest import Trained, running_server


class _ModelFiles(http.server.ThreadingHTTPServer):
    """Serves a directory's files on loopback; each answer waits until `gate` is set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate = threading.Event()
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ModelFiles

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        self.server.gate.wait(30)
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def model_files(sklearn_iris: Trained) -> Iterator[_ModelFiles]:
    files = _ModelFiles(sklearn_iris.model_dir)
    thread = threading.Thread(target=files.serve_forever, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        files.gate.set()
        files.shutdown()
        files.server_close()
        thread.join(5)


def test_the_server_is_ready_once_its_own_download_is_in_place_and_loaded(
    tmp_path: Path, sklearn_iris: Trained, model_files: _ModelFiles
) -> None:
    model_dir = tmp_path / "mnt" / "models"
    model_dir.mkdir(parents=True)  # the pod's emptyDir is mounted there already
    env = {"STORAGE_URI": f"{model_files.url}/model.joblib"}
    with running_server(tmp_path, model_dir, "sklearn", env=env, ready=False) as server:
        assert httpx.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
        eventually(lambda: model_files.requests, 30, "the server's download request")
        assert model_files.requests == ["/model.joblib"]
        assert httpx.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
        model_files.gate.set()
        server.wait_for("/v2/health/ready", 200)
        rows = sklearn_iris.features[:3]
        response = httpx.post(
            server.url + "/v1/models/models:predict", json={"instances": rows.tolist()}, timeout=5
        )
        assert response.json()["predictions"] == sklearn_iris.model.predict(rows).tolist()
        fetched = [e["message"] for e in server.logs() if e.get("storage_uri") == env["STORAGE_URI"]]
        assert any("is ready in" in message for message in fetched), server.logs()
    assert (model_dir / "model.joblib").read_bytes() == (sklearn_iris.model_dir / "model.joblib").read_bytes()


def test_workers_start_once_the_download_is_in_place(
    tmp_path: Path, sklearn_iris: Trained, model_files: _ModelFiles
) -> None:
    model_files.gate.set()
    model_dir = tmp_path / "models"
    args = (f"--storage_uri={model_files.url}/model.joblib", "--workers=2")
    with running_server(tmp_path, model_dir, "sklearn", *args) as server:
        rows = sklearn_iris.features[:2]
        for _ in range(4):
            response = httpx.post(
                server.url + "/v1/models/models:predict", json={"instances": rows.tolist()}, timeout=5
            )
            assert response.json()["predictions"] == sklearn_iris.model.predict(rows).tolist()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_download_stops_the_server_with_the_reason(
    tmp_path: Path, model_files: _ModelFiles, workers: int
) -> None:
    model_files.gate.set()
    uri = f"{model_files.url}/no-such-model.joblib"
    termination_log = tmp_path / "termination-log"
    command = [
        sys.executable,
        "-m",
        "kubeserve_server",
        "--model_name=iris",
        f"--model_dir={tmp_path / 'models'}",
        f"--storage_uri={uri}",
        f"--workers={workers}",
        "--host=127.0.0.1",
        f"--http_port={free_port()}",
        f"--grpc_port={free_port()}",
        f"--termination_log={termination_log}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert termination_log.read_text() == f"cannot fetch {uri}: not found (HTTP 404): check the URL"
