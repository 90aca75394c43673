"""SIGTERM drains: readiness says no while both listeners keep serving, so connections kube-proxy still
sends during its next sync are answered; then the server exits 0. A second signal stops it at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest

from kubeserve_server.config import parse_args
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Server, Trained, running_server
from tests.server.test_grpc_v2 import infer_request
from tests.server.test_loading import gated_model

# Generous: an exit takes well under a second here, but a loaded CI machine may be slow.
EXIT_MARGIN_SECONDS = 8.0


def sigterm(server: Server) -> float:
    """Send SIGTERM; the monotonic time just before it."""
    started = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    return started


def exit_seconds(server: Server, since: float) -> float:
    """Wait for the server to exit with status 0; its seconds since `since`."""
    assert server.process.wait(30) == 0, server.log_path.read_text()
    return time.monotonic() - since


def test_the_default_drain_covers_kube_proxy_inside_the_grace_period() -> None:
    assert 1 < parse_args(["--model_name=m"]).drain_seconds < 30


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_then_exits(tmp_path: Path, sklearn_iris: Trained, workers: int) -> None:
    rows = sklearn_iris.features[:3].tolist()
    expected = sklearn_iris.model.predict(rows).tolist()
    predict = "/v1/models/iris:predict"
    args = ("--drain_seconds=2", f"--workers={workers}")
    with (
        running_server(tmp_path, sklearn_iris.model_dir, "sklearn", *args) as server,
        httpx.Client(base_url=server.url, timeout=5) as http,
    ):
        assert http.post(predict, json={"instances": rows}).json() == {"predictions": expected}
        started = sigterm(server)
        server.wait_for("/v2/health/ready", 503, http)
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
        assert http.get("/v1/models/iris").status_code == 503
        assert http.post(predict, json={"instances": rows}).json() == {"predictions": expected}
        # A new connection, as kube-proxy would still route one: accepted and answered.
        assert httpx.post(server.url + predict, json={"instances": rows}).json() == {"predictions": expected}
        with grpc.insecure_channel(server.grpc_target) as channel:
            client = GrpcClient(channel)
            assert not client.call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
            ready = client.call("ModelReady", pb.ModelReadyRequest(name="iris"), pb.ModelReadyResponse)
            assert not ready.ready
            [output] = client.infer(infer_request(sklearn_iris.features[:3])).outputs
            assert list(output.contents.int64_contents) == expected
        assert time.monotonic() - started < 2, "the checks above ran past the drain"
        seconds = exit_seconds(server, started)
    assert 2 <= seconds < 2 + EXIT_MARGIN_SECONDS


def test_no_drain_stops_at_once(tmp_path: Path, sklearn_iris: Trained) -> None:
    with running_server(tmp_path, sklearn_iris.model_dir, "sklearn", "--drain_seconds=0") as server:
        seconds = exit_seconds(server, sigterm(server))
    assert seconds < 2


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_sigterm_stops_a_drain_at_once(tmp_path: Path, sklearn_iris: Trained, workers: int) -> None:
    args = ("--drain_seconds=30", f"--workers={workers}")
    with running_server(tmp_path, sklearn_iris.model_dir, "sklearn", *args) as server:
        sigterm(server)
        server.wait_for("/v2/health/ready", 503)
        seconds = exit_seconds(server, sigterm(server))
    assert seconds < EXIT_MARGIN_SECONDS


def test_a_server_still_loading_has_nothing_to_drain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing routes to a server that is not ready, so SIGTERM stops it listening at once."""
    model_dir, gate, env = gated_model(tmp_path, monkeypatch)
    with running_server(tmp_path, model_dir, "sklearn", "--drain_seconds=30", env=env, ready=False) as server:
        started = sigterm(server)
        deadline = started + EXIT_MARGIN_SECONDS
        with contextlib.suppress(httpx.TransportError):  # refused, or cut off as it stops
            while time.monotonic() < deadline:
                httpx.get(server.url + "/v2/health/live")
                time.sleep(0.05)
        assert time.monotonic() < deadline, "still listening"
        # The loading thread blocks the exit until the model has loaded; let it.
        gate.touch()
        assert exit_seconds(server, started) < EXIT_MARGIN_SECONDS * 2


def test_draining_ends_keep_alive(tmp_path: Path, sklearn_iris: Trained) -> None:
    """Idle keep-alive connections close when the drain starts, and every answer during it says
    `Connection: close`, so clients reconnect through the Service, which no longer routes here."""
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with (
        running_server(tmp_path, sklearn_iris.model_dir, "sklearn", "--drain_seconds=30") as server,
        socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as idle,
    ):
        idle.sendall(request)
        response = b""
        while not response.endswith(b'{"live":true}'):
            chunk = idle.recv(65536)
            assert chunk, "closed before the answer"
            response += chunk
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" not in response
        sigterm(server)
        server.wait_for("/v2/health/ready", 503)
        assert idle.recv(65536) == b"", "the idle keep-alive connection stayed open"
        with httpx.Client(base_url=server.url, timeout=5) as http:
            response = http.get("/v2/health/live")
        assert response.status_code == 200 and response.headers["connection"] == "close"
