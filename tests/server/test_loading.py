"""Readiness follows the model: not ready while loading, ready after. A model that fails to load
stops the server with exit status 1, its reason logged and left in the termination-message file,
where the kubelet reports it in the pod's status (a live, not-ready server would hide it)."""

from __future__ import annotations

import json
import pickle
import re
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeserve.devcluster.ports import free_port
from kubeserve_server.config import parse_args
from kubeserve_server.server import TERMINATION_MESSAGE_LIMIT, write_termination_message
from tests.server.conftest import Trained, running_server

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


def gated_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, dict[str, str]]:
    """A model `slow` that loads once the gate file exists: its directory, the gate, the server's env."""
    (tmp_path / "gated_estimator.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from gated_estimator import GatedClassifier  # type: ignore[import-not-found]

    model_dir = tmp_path / "slow"
    model_dir.mkdir()
    model = GatedClassifier(strategy="constant", constant=2).fit([[0, 0]], [2])
    (model_dir / "model.pkl").write_bytes(pickle.dumps(model))
    sys.modules.pop("gated_estimator")
    gate = tmp_path / "gate"
    return model_dir, gate, {"PYTHONPATH": str(tmp_path), "KUBESERVE_TEST_GATE": str(gate)}


def test_ready_only_once_the_model_has_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir, gate, env = gated_model(tmp_path, monkeypatch)
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


def fail_to_load(model_dir: Path, *args: str) -> tuple[list[dict[str, Any]], float]:
    """Run a server whose model cannot load; its JSON log lines, and its seconds from the load
    error to its exit (status 1, or the test fails)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeserve_server",
            f"--model_name={model_dir.name}",
            f"--model_dir={model_dir}",
            "--host=127.0.0.1",
            f"--http_port={free_port()}",
            f"--grpc_port={free_port()}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    exited = datetime.now(UTC)
    assert result.returncode == 1, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]  # JSON only: no traceback
    error = next(entry for entry in entries if entry["level"] == "error")
    return entries, (exited - datetime.fromisoformat(error["time"])).total_seconds()


def broken_model(tmp_path: Path, files: dict[str, bytes]) -> Path:
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    for name, content in files.items():
        (model_dir / name).write_bytes(content)
    return model_dir


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"model.joblib": b"this is not a pickle"}, "model.joblib is not a joblib or pickle file"),
        ({}, "no sklearn model file (.joblib, .pkl, .pickle)"),
        ({"a.pkl": b"", "b.pkl": b""}, "several sklearn model files"),
    ],
    ids=["corrupt", "empty", "ambiguous"],
)
def test_model_that_fails_to_load_exits_with_the_reason(
    tmp_path: Path, files: dict[str, bytes], reason: str
) -> None:
    model_dir = broken_model(tmp_path, files)
    termination_log = tmp_path / "termination-log"
    entries, seconds = fail_to_load(model_dir, f"--termination_log={termination_log}")
    [error] = [entry for entry in entries if entry["level"] == "error"]
    assert error["message"].startswith(f"model 'broken' failed to load from {model_dir}: ModelLoadError: ")
    assert reason in error["message"] and error["model_dir"] == str(model_dir)
    assert termination_log.read_text() == error["message"]
    assert seconds < 5, entries


def test_a_worker_whose_model_fails_to_load_stops_the_server(tmp_path: Path) -> None:
    model_dir = broken_model(tmp_path, {"model.joblib": b"this is not a pickle"})
    termination_log = tmp_path / "termination-log"
    entries, seconds = fail_to_load(model_dir, "--workers=2", f"--termination_log={termination_log}")
    failed = [entry["message"] for entry in entries if "failed to load" in entry["message"]]
    assert failed and termination_log.read_text() == failed[0]
    assert "ModelLoadError: " in failed[0]
    assert any(
        re.fullmatch(r"worker-\d \(pid \d+\) exited with 1; stopping the others", entry["message"])
        for entry in entries
    ), entries
    assert seconds < 10, entries


def test_an_unwritable_termination_log_is_skipped(tmp_path: Path) -> None:
    model_dir = broken_model(tmp_path, {})
    missing = tmp_path / "no-such-dir" / "termination-log"
    entries, _ = fail_to_load(model_dir, f"--termination_log={missing}")
    assert [entry["level"] for entry in entries].count("error") == 1
    assert not missing.parent.exists()


def test_the_termination_message_fits_the_kubelet_limit(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    message = "model 'iris' failed to load: " + "é" * 5000  # the limit falls inside an "é"
    write_termination_message(path, message)
    written = path.read_bytes()
    assert len(written) == TERMINATION_MESSAGE_LIMIT - 1 and message.startswith(written.decode())
    assert parse_args(["--model_name=m"]).termination_log == Path("/dev/termination-log")


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


def test_with_model_init_mode_async_the_server_waits_for_its_model_directory_not_ready(
    tmp_path: Path, sklearn_iris: Trained
) -> None:
    """A modelcar's sidecar links /mnt/models only after the pod's containers start."""
    model_dir = tmp_path / "mnt" / "models"
    with running_server(
        tmp_path, model_dir, "sklearn", env={"MODEL_INIT_MODE": "async"}, ready=False
    ) as server:
        assert httpx.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
        model_dir.parent.mkdir()
        model_dir.symlink_to(sklearn_iris.model_dir)
        server.wait_for("/v2/health/ready", 200)
        response = httpx.post(
            server.url + "/v1/models/models:predict",
            json={"instances": sklearn_iris.features[:2].tolist()},
            timeout=5,
        )
        assert (
            response.json()["predictions"] == sklearn_iris.model.predict(sklearn_iris.features[:2]).tolist()
        )


def test_a_server_without_a_payload_sink_does_not_import_its_http_client() -> None:
    """Every import is paid by each cold start before the model loads; httpx (a tenth of a second or
    more) serves only payload logging."""
    probe = "import sys, kubeserve_server.server; print('httpx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr
