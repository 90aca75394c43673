"""Real model servers for the tests: `kubeserve-server` processes on 127.0.0.1, on free ports.

Models are trained here, on tiny data, so every test can compare the server's answers with the
model's own `predict` on the same rows. Each server is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
from google.protobuf.message import Message
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.devcluster.ports import free_port
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb

STARTUP_SECONDS = 90.0
# Filled by test_fuzz.py, printed in the terminal summary.
FUZZ_STATS = {"cases": 0, "server_errors": 0}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FUZZ_STATS["cases"]:
        cases, errors = FUZZ_STATS["cases"], FUZZ_STATS["server_errors"]
        terminalreporter.write_line(f"REST fuzzing: {cases} cases tried, {errors} server errors (5xx)")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def logs(self) -> list[dict[str, Any]]:
        """Every line the server wrote to stderr, parsed: each must be one JSON object."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def wait_for(self, path: str, status: int, client: httpx.Client | None = None) -> None:
        if client is None:
            with httpx.Client(timeout=5, verify=self.verify) as own:
                return self.wait_for(path, status, own)
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert self.process.poll() is None, f"server exited: {self.log_path.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if client.get(self.url + path).status_code == status:
                    return None
            assert time.monotonic() < deadline, f"{path} never answered {status}: {self.log_path.read_text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@contextlib.contextmanager
def running_server(
    log_dir: Path,
    model_dir: Path,
    model_format: str = "sklearn",
    *args: str,
    env: dict[str, str] | None = None,
    ready: bool = True,
    verify: ssl.SSLContext | bool = True,
) -> Iterator[Server]:
    """Start `python -m kubeserve_server`; wait until live (and ready, unless told not to)."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"server-{http_port}.log"
    command = [
        sys.executable,
        "-m",
        "kubeserve_server",
        "--model_name=" + model_dir.name,
        f"--model_dir={model_dir}",
        f"--model_format={model_format}",
        "--host=127.0.0.1",
        f"--http_port={http_port}",
        f"--grpc_port={grpc_port}",
        # Teardown stops at once; the drain tests pass their own, which argparse takes over this one.
        "--drain_seconds=0",
        *args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    scheme = "https" if any(arg.startswith("--tls_cert_file") for arg in args) else "http"
    server = Server(process, http_port, grpc_port, log_path, scheme, verify)
    try:
        server.wait_for("/v2/health/live", 200)
        if ready:
            server.wait_for("/v2/health/ready", 200)
        yield server
    finally:
        server.stop()


class GrpcClient:
    """A v2 client built on the channel's generic calls, typed by the generated messages."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel

    def call(self, method: str, request: Message, response_type: type[Message], timeout: float = 10) -> Any:
        stub = self.channel.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        return stub(request, timeout=timeout)

    def infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        response: pb.ModelInferResponse = self.call("ModelInfer", request, pb.ModelInferResponse)
        return response


@dataclass
class Trained:
    """A model saved for the server and the same model in memory, to compare answers with."""

    model_dir: Path
    model: Any
    features: np.ndarray[Any, Any]


@pytest.fixture(scope="session")
def iris_features() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    features, labels = load_iris(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def sklearn_iris(
    tmp_path_factory: pytest.TempPathFactory, iris_features: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> Trained:
    features, labels = iris_features
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    model_dir = tmp_path_factory.mktemp("models") / "iris"
    model_dir.mkdir()
    joblib.dump(model, model_dir / "model.joblib")
    return Trained(model_dir, model, features)


@pytest.fixture(scope="session")
def iris_server(tmp_path_factory: pytest.TempPathFactory, sklearn_iris: Trained) -> Iterator[Server]:
    """One sklearn server shared by the protocol tests; its body limit is small for the 413 test."""
    with running_server(
        tmp_path_factory.mktemp("logs"), sklearn_iris.model_dir, "sklearn", "--max_request_size=200000"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def fuzzed_api(iris_server: Server) -> Any:
    """The served OpenAPI document, loaded by schemathesis, for test_fuzz.py."""
    import schemathesis

    return schemathesis.openapi.from_url(f"{iris_server.url}/openapi.json")


@pytest.fixture
def http(iris_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=iris_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def grpc_client(iris_server: Server) -> Iterator[GrpcClient]:
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        yield GrpcClient(channel)
