"""Readiness follows the model: not ready while loading, ready after, and a model that fails to
load leaves a clear log line and a live, not-ready server instead of a crash loop."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import httpx
import pytest

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.network import free_port
from tests.server.conftest import GrpcClient, Trained, running_server

# An estimator whose unpickling waits for a gate file, so the test decides when loading ends.
GATED_MODULE = textwrap.dedent(
    """
    import os, time
    from sklearn.dummy import DummyClassifier

    class GatedClassifier(DummyClassifier):
        def __setstate__(self, state):
            deadline = time.monotonic() + 60
            while not os.path.exists(os.environ["KUBESERVE_TEST_GATE"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            super().__setstate__(state)
    """
)


def test_ready_only_once_the_model_has_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gated_estimator.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from gated_estimator import GatedClassifier  # type: ignore[import-not-found]

    model_dir = tmp_path / "slow"
    model_dir.mkdir()
    model = GatedClassifier(strategy="constant", constant=2).fit([[0, 0]], [2])
    (model_dir / "model.pkl").write_bytes(pickle.dumps(model))
    sys.modules.pop("gated_estimator")
    gate = tmp_path / "gate"
    env = {"PYTHONPATH": str(tmp_path), "KUBESERVE_TEST_GATE": str(gate)}
    with (
        running_server(tmp_path, model_dir, "sklearn", env=env, ready=False) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 503
        assert http.get("/v2/models/slow/ready").json() == {"name": "slow", "ready": False}
        body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
        loading = http.post("/v2/models/slow/infer", json=body)
        assert loading.status_code == 503 and "still loading" in loading.json()["error"]
        gate.touch()
        server.wait_for("/v2/health/ready", 200, http)
        assert http.post("/v2/models/slow/infer", json=body).json()["outputs"][0]["data"] == [2]


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"model.joblib": b"this is not a pickle"}, "model.joblib is not a joblib or pickle file"),
        ({}, "no sklearn model file (.joblib, .pkl, .pickle)"),
        ({"a.pkl": b"", "b.pkl": b""}, "several sklearn model files"),
    ],
    ids=["corrupt", "empty", "ambiguous"],
)
def test_model_that_fails_to_load_leaves_the_server_up_and_not_ready(
    tmp_path: Path, files: dict[str, bytes], reason: str
) -> None:
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    for name, content in files.items():
        (model_dir / name).write_bytes(content)
    with (
        running_server(tmp_path, model_dir, "sklearn", ready=False) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        deadline = time.monotonic() + 60
        while not any(entry["level"] == "error" for entry in server.logs()):
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.1)
        [error] = [entry for entry in server.logs() if entry["level"] == "error"]
        assert error["message"].startswith("model 'broken' failed to load from ")
        assert reason in error["message"] and error["model_dir"] == str(model_dir)
        time.sleep(0.5)
        assert server.process.poll() is None
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 503
        refused = http.post("/v1/models/broken:predict", json={"instances": [[1]]})
        assert refused.status_code == 503 and "failed to load" in refused.json()["error"]
        with grpc.insecure_channel(server.grpc_target) as channel:
            assert (
                not GrpcClient(channel)
                .call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse)
                .ready
            )


def test_unknown_format_is_refused_at_startup(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubeserve_server", "--model_name=m", "--model_format=pytorch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid choice: 'pytorch'" in result.stderr


@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_a_taken_port_is_a_clear_error(tmp_path: Path, sklearn_iris: Trained, taken: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        ports = {"http": free_port(), "grpc": free_port(), taken: port}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubeserve_server",
                "--model_name=iris",
                f"--model_dir={sklearn_iris.model_dir}",
                "--host=127.0.0.1",
                f"--http_port={ports['http']}",
                f"--grpc_port={ports['grpc']}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    last = json.loads(result.stderr.splitlines()[-1])
    assert last["level"] == "critical" and last["message"].startswith("cannot serve: ")
    assert str(port) in last["message"]
