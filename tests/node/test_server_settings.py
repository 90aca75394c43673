"""KServe's logger, batcher, containerConcurrency and timeout, from the InferenceService to a real pod:
the operator renders them into kubeserve-server's flags, and the running server acts on them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from kubeserve.devcluster import addresses
from tests.cluster.isvc import Isvcs
from tests.node.workloads import Models, routed, served
from tests.polling import eventually

NAME = "iris-settings"


class Sink(ThreadingHTTPServer):
    """A CloudEvents sink on the node's address, which the pods may reach: it keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__((addresses.NODE_IP, 0), Handler)

    @property
    def url(self) -> str:
        return f"http://{addresses.NODE_IP}:{self.server_address[1]}/"


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_logger_batcher_concurrency_and_timeout_reach_the_running_server(
    node_kube: k8s.ApiClient, installed_operator: str, node_namespace: str, models: Models, sink: Sink
) -> None:
    isvcs = Isvcs(node_kube, node_namespace)
    isvcs.apply(
        served(
            NAME,
            "sklearn",
            "s3://models/sklearn/iris",
            logger={"url": sink.url, "mode": "all"},
            batcher={"maxBatchSize": 8, "maxLatency": 50},
            containerConcurrency=4,
            timeout=30,
        )
    )
    body = isvcs.wait_ready(NAME, timeout=180)
    supported = next(c for c in body["status"]["conditions"] if c["type"] == "FieldsSupported")
    assert supported["status"] == "True", supported
    deployment = k8s.AppsV1Api(node_kube).read_namespaced_deployment(f"{NAME}-predictor", node_namespace)
    args = deployment.spec.template.spec.containers[0].args
    for flag in (
        "--container_concurrency=4",
        "--request_timeout=30",
        f"--log_payload_url={sink.url}",
        "--log_payload_mode=all",
        "--max_batch_size=8",
        "--max_batch_latency_ms=50",
    ):
        assert flag in args, (flag, args)

    service = k8s.CoreV1Api(node_kube).read_namespaced_service(f"{NAME}-predictor", node_namespace)
    address = routed(service.spec.cluster_ip)
    response = httpx.post(
        f"http://{address}/v1/models/{NAME}:predict", json={"instances": models.inputs}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == models.sklearn_expected

    events = eventually(
        lambda: sink.events if len(sink.events) >= 2 else None, 20, "the request and response events"
    )
    by_type = {headers["ce-type"]: json.loads(payload) for headers, payload in events}
    assert by_type["io.kubeserve.inference.request"] == {"instances": models.inputs}
    assert by_type["io.kubeserve.inference.response"]["predictions"] == models.sklearn_expected

    metrics = httpx.get(f"http://{address}/metrics", timeout=10).text
    batches = [line for line in metrics.splitlines() if line.startswith("kubeserve_batch_size_count")]
    assert batches and float(batches[0].split()[-1]) >= 1, batches
