"""Prometheus metrics, JSON logs, payload logging to a CloudEvents sink, and a clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.devcluster.ports import free_port
from kubeserve_server.metrics import Metrics
from kubeserve_server.payload_log import PayloadLogger
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Server, Trained, running_server

ROWS = [[6.3, 3.3, 6.0, 2.5], [5.0, 3.6, 1.4, 0.2]]
V2_BODY = {"id": "req-1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_errors_latency_per_protocol(iris_server: Server) -> None:
    before = samples(iris_server)
    with httpx.Client(base_url=iris_server.url) as http:
        for _ in range(3):
            assert http.post("/v2/models/iris/infer", json=V2_BODY).status_code == 200
        assert http.post("/v2/models/iris/infer", content=b"{").status_code == 400
        assert http.post("/v1/models/iris:predict", json={"instances": ROWS}).status_code == 200
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        request = pb.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(
            ROWS[0]
        )
        GrpcClient(channel).infer(request)
    after = samples(iris_server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({"model": "iris", **labels}.items())))
        return after[key] - before.get(key, 0.0)

    assert delta("kubeserve_requests_total", protocol="v2") == 4
    assert delta("kubeserve_requests_total", protocol="v1") == 1
    assert delta("kubeserve_requests_total", protocol="grpc-v2") == 1
    assert delta("kubeserve_request_errors_total", protocol="v2", status="400") == 1
    assert delta("kubeserve_request_duration_seconds_count", protocol="v2") == 4
    assert delta("kubeserve_request_duration_seconds_bucket", protocol="grpc-v2", le="+Inf") == 1
    assert delta("kubeserve_request_duration_seconds_sum", protocol="v1") > 0
    assert after[("kubeserve_requests_in_flight", (("model", "iris"), ("protocol", "v2")))] == 0
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(iris_server: Server) -> None:
    """nginx's 499: the client closed the request, so 5xx alerts must not fire."""
    before = samples(iris_server)
    key = "kubeserve_request_errors_total"
    with socket.create_connection(("127.0.0.1", iris_server.http_port)) as connection:
        connection.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    deadline = time.monotonic() + 30
    while True:
        after = samples(iris_server)
        counted = {
            labels: value - before.get((name, labels), 0.0)
            for (name, labels), value in after.items()
            if name == key and value != before.get((name, labels), 0.0)
        }
        if counted or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted == {(("model", "iris"), ("protocol", "v2"), ("status", "499")): 1}


def test_logs_are_json_lines(iris_server: Server) -> None:
    entries = iris_server.logs()
    assert entries, "the server logged nothing"
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any(entry["message"].startswith("model 'iris' loaded") for entry in entries)


@dataclass
class Sink:
    """A CloudEvents sink on 127.0.0.1 that records what it receives."""

    url: str
    events: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + 30
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"only {len(self.events)} of {count} events arrived"
            time.sleep(0.05)
        return self.events


@pytest.fixture
def sink() -> Iterator[Sink]:
    received: list[tuple[dict[str, str], bytes]] = []
    holder: dict[str, Sink] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            time.sleep(holder["sink"].delay)
            received.append(({key.lower(): value for key, value in self.headers.items()}, body))
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the events, not the access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    holder["sink"] = Sink(f"http://127.0.0.1:{server.server_address[1]}/events", received)
    try:
        yield holder["sink"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_payloads_go_to_the_cloudevents_sink(tmp_path: Path, sklearn_iris: Trained, sink: Sink) -> None:
    with running_server(
        tmp_path, sklearn_iris.model_dir, "sklearn", f"--log_payload_url={sink.url}"
    ) as server:
        with httpx.Client(base_url=server.url) as http:
            v2 = http.post("/v2/models/iris/infer", json=V2_BODY)
            v1 = http.post("/v1/models/iris:predict", json={"instances": ROWS})
        with grpc.insecure_channel(server.grpc_target) as channel:
            request = pb.ModelInferRequest(model_name="iris", id="grpc-1")
            request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(
                ROWS[0]
            )
            GrpcClient(channel).infer(request)
        events = sink.wait_for(6)
    by_id: dict[str, dict[str, bytes]] = {}
    for headers, body in events:
        assert headers["ce-specversion"] == "1.0" and headers["ce-source"] == "kubeserve/iris"
        assert headers["content-type"] == "application/json" and headers["ce-time"]
        by_id.setdefault(headers["ce-id"], {})[headers["ce-type"].rsplit(".", 1)[1]] = body
    assert set(by_id["req-1"]) == {"request", "response"}
    assert orjson.loads(by_id["req-1"]["request"]) == V2_BODY
    assert by_id["req-1"]["response"] == v2.content
    v1_events = [pair for key, pair in by_id.items() if key not in ("req-1", "grpc-1")]
    assert [orjson.loads(pair["response"]) for pair in v1_events] == [v1.json()]
    assert orjson.loads(by_id["grpc-1"]["request"])["id"] == "grpc-1"
    assert orjson.loads(by_id["grpc-1"]["response"])["outputs"][0]["name"] == "predict"


@pytest.mark.parametrize("mode", ["request", "response"])
def test_the_payload_mode_picks_the_events(
    tmp_path: Path, sklearn_iris: Trained, sink: Sink, mode: str
) -> None:
    with (
        running_server(
            tmp_path,
            sklearn_iris.model_dir,
            "sklearn",
            f"--log_payload_url={sink.url}",
            f"--log_payload_mode={mode}",
        ) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        v2 = http.post("/v2/models/iris/infer", json=V2_BODY)
        v1 = http.post("/v1/models/iris:predict", json={"instances": ROWS})
        sink.wait_for(2)
        # The other side's events, were they sent, would follow within this.
        time.sleep(0.5)
    assert [headers["ce-type"] for headers, _ in sink.events] == [f"io.kubeserve.inference.{mode}"] * 2
    bodies = [orjson.loads(body) for _, body in sink.events]
    if mode == "request":
        assert bodies == [V2_BODY, {"instances": ROWS}]
    else:
        assert bodies == [v2.json(), v1.json()]


def test_a_slow_sink_does_not_slow_inference(tmp_path: Path, sklearn_iris: Trained, sink: Sink) -> None:
    sink.delay = 0.5
    with (
        running_server(
            tmp_path, sklearn_iris.model_dir, "sklearn", f"--log_payload_url={sink.url}"
        ) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        started = time.monotonic()
        for _ in range(10):
            assert http.post("/v2/models/iris/infer", json=V2_BODY).status_code == 200
        elapsed = time.monotonic() - started
    # Twenty events at half a second each would take ten seconds if they were on the request path.
    assert elapsed < 3, elapsed


def test_sigterm_stops_the_server_cleanly(tmp_path: Path, sklearn_iris: Trained) -> None:
    with running_server(tmp_path, sklearn_iris.model_dir) as server:
        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(15) == 0
        assert time.monotonic() - started < 10


async def test_a_full_queue_drops_events_and_counts_them() -> None:
    metrics = Metrics("m")
    payloads = PayloadLogger("http://127.0.0.1:9/", "m", metrics.payload_events_dropped, queue_size=2)
    payloads.submit("a", (b"{}", b"application/json"), (b"{}", b"application/json"))
    payloads.submit("b", (b"{}", b"application/json"), (b"{}", b"application/json"))
    assert 'kubeserve_payload_events_dropped_total{model="m"} 2.0' in metrics.exposition().decode()


async def test_an_unreachable_sink_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics("m")
    payloads = PayloadLogger(f"http://127.0.0.1:{free_port()}/", "m", metrics.payload_events_dropped)
    payloads.start()
    for index in range(3):
        payloads.submit(str(index), (b"{}", b"application/json"), (b"{}", b"application/json"))
    await payloads.stop(drain_seconds=10)
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "events are lost" in warnings[0]
