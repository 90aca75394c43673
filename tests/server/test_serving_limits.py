"""The in-flight limit (`--container_concurrency`) and the request deadline (`--request_timeout`),
observed over real HTTP and gRPC with a model that is slow on purpose and says, in each answer, how
many of its calls were running when that call started."""

from __future__ import annotations

import pickle
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from kubeserve_server.config import DEFAULT_MAX_BATCH_LATENCY_MS, DEFAULT_MAX_BATCH_SIZE, parse_args
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Server, running_server

SLOW_MODULE = textwrap.dedent(
    """
    import threading, time
    import numpy as np
    from sklearn.dummy import DummyClassifier

    _lock = threading.Lock()
    _running = 0

    class SlowClassifier(DummyClassifier):
        def predict(self, X):
            global _running
            with _lock:
                _running += 1
                seen = _running
            try:
                time.sleep(self.delay)
            finally:
                with _lock:
                    _running -= 1
            return np.full(len(X), seen)
    """
)
BODY = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [[0.0, 1.0]]}]}


@contextmanager
def slow_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delay: float, *args: str
) -> Iterator[Server]:
    """A server of model `slow`: each call sleeps `delay` s and answers how many calls ran at its start."""
    (tmp_path / "slow_estimator.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from slow_estimator import SlowClassifier  # type: ignore[import-not-found]

    model_dir = tmp_path / "slow"
    model_dir.mkdir()
    model = SlowClassifier(strategy="constant", constant=0).fit([[0, 0]], [0])
    model.delay = delay
    (model_dir / "model.pkl").write_bytes(pickle.dumps(model))
    sys.modules.pop("slow_estimator")
    with running_server(tmp_path, model_dir, "sklearn", *args, env={"PYTHONPATH": str(tmp_path)}) as server:
        yield server


def at_once(count: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`count` requests sent together from their own threads, released by one barrier."""
    barrier = threading.Barrier(count)

    def one() -> httpx.Response:
        barrier.wait()
        return send()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


@pytest.mark.parametrize(("limit", "most"), [(2, 2), (0, None)])
def test_no_more_than_the_limit_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, most: int | None
) -> None:
    """Six clients, two slots: the model never sees more than two calls; with no limit it sees more."""
    args = [f"--container_concurrency={limit}", "--request_timeout=30"]
    with (
        slow_server(tmp_path, monkeypatch, 0.4, *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        probes: list[float] = []

        def probe_while_busy() -> None:
            time.sleep(0.2)
            for path in ("/v2/health/ready", "/v2/models/slow", "/metrics", "/v2/health/live"):
                started = time.monotonic()
                assert http.get(path).status_code == 200
                probes.append(time.monotonic() - started)

        prober = threading.Thread(target=probe_while_busy)
        prober.start()
        started = time.monotonic()
        answers = at_once(6, lambda: http.post("/v2/models/slow/infer", json=BODY))
        elapsed = time.monotonic() - started
        prober.join()
    assert [answer.status_code for answer in answers] == [200] * 6
    seen = [answer.json()["outputs"][0]["data"][0] for answer in answers]
    if most is None:
        assert max(seen) > 2, seen
    else:
        assert max(seen) == most, seen
        # Three rounds of two 0.4 s calls each.
        assert elapsed >= 1.1, elapsed
    # Health, metadata and metrics never wait for a slot.
    assert max(probes) < 0.3, probes


def test_waiting_requests_go_first_come_first_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One slot, 0.3 s calls, five requests sent 50 ms apart: they are answered in the order sent."""
    args = ["--container_concurrency=1", "--request_timeout=30"]
    with (
        slow_server(tmp_path, monkeypatch, 0.3, *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        answered: list[int] = []

        def send(index: int) -> None:
            time.sleep(0.05 * index)
            assert http.post("/v2/models/slow/infer", json=BODY).status_code == 200
            answered.append(index)

        with ThreadPoolExecutor(5) as pool:
            list(pool.map(send, range(5)))
    assert answered == [0, 1, 2, 3, 4]


def test_the_deadline_answers_504_and_a_queued_request_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot, a 0.5 s deadline, a 2 s model call: the caller gets 504 at the deadline; the call
    goes on in its thread and keeps the slot, so requests behind it wait and get 503 with Retry-After."""
    args = ["--container_concurrency=1", "--request_timeout=0.5"]
    with (
        slow_server(tmp_path, monkeypatch, 2.0, *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            first = pool.submit(http.post, "/v2/models/slow/infer", json=BODY)
            time.sleep(0.2)
            queued = http.post("/v1/models/slow:predict", json={"instances": [[0.0, 1.0]]})
            timed_out = first.result()
            first_elapsed = time.monotonic() - started
        # The first call is still running (until about 2 s): the slot is still taken.
        behind = http.post("/v2/models/slow/infer", json=BODY)
        assert time.monotonic() - started < 1.9
        assert http.get("/v2/health/ready").status_code == 200
        time.sleep(max(0.0, 2.3 - (time.monotonic() - started)))
        # Free again once the call has ended: this one runs, and times out on its own.
        assert http.post("/v2/models/slow/infer", json=BODY).status_code == 504
    assert timed_out.status_code == 504, timed_out.text
    assert "request timeout of 0.5s" in timed_out.json()["error"]
    assert 0.5 <= first_elapsed < 1.5, first_elapsed
    for refused in (queued, behind):
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "--container_concurrency" in refused.json()["error"]


def test_grpc_gets_deadline_exceeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with slow_server(tmp_path, monkeypatch, 2.0, "--request_timeout=0.3") as server:
        request = pb.ModelInferRequest(model_name="slow")
        request.inputs.add(name="input-0", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend(
            [0, 1]
        )
        with grpc.insecure_channel(server.grpc_target) as channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                GrpcClient(channel).infer(request)
            elapsed = time.monotonic() - started
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "request timeout of 0.3s" in error.details()
    assert elapsed < 1.5, elapsed


def test_flags_refuse_bad_values_and_batching_fills_in_kserve_defaults() -> None:
    for bad in (
        "--container_concurrency=-1",
        "--request_timeout=-2",
        "--max_batch_size=0",
        "--log_payload_mode=x",
    ):
        with pytest.raises(SystemExit):
            parse_args(["--model_name=m", bad])
    assert parse_args(["--model_name=m"]).max_batch_size is None
    size_only = parse_args(["--model-name=m", "--max-batch-size=8"])
    assert (size_only.max_batch_size, size_only.max_batch_latency_ms) == (8, DEFAULT_MAX_BATCH_LATENCY_MS)
    latency_only = parse_args(["--model_name=m", "--max_batch_latency_ms=5"])
    assert (latency_only.max_batch_size, latency_only.max_batch_latency_ms) == (DEFAULT_MAX_BATCH_SIZE, 5)
