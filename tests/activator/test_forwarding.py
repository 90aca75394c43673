"""Requests for a service with Ready pods go straight through: the Host header picks the service, the
body streams both ways, end-to-end headers pass and hop-by-hop ones stop; unknown hosts get 404."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import httpx
import numpy as np
import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from kubeserve.devcluster.ports import free_port
from kubeserve_activator import server
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.forwarding import end_to_end
from kubeserve_activator.holding import Holder
from kubeserve_activator.hosts import service_of_host
from kubeserve_activator.metrics import ActivatorMetrics
from kubeserve_activator.probing import ReadinessProber
from kubeserve_activator.tables import EndpointTable, ServiceTable
from tests.activator.conftest import IRIS, TEST_CONFIG, ActivatorFactory, RecordingWaker, client, infer_body
from tests.server.conftest import Server, Trained

ROWS = 200_000  # about 15 MiB of JSON up, 1.2 MiB down


@pytest.fixture
def warm(endpoints: EndpointTable, iris_backend: Server) -> None:
    endpoints.set(IRIS, [("127.0.0.1", iris_backend.http_port)])


@pytest.mark.usefixtures("warm")
async def test_a_large_body_streams_through_both_ways_with_no_wake(
    activator: ActivatorFactory, sklearn_iris: Trained
) -> None:
    rows = np.resize(sklearn_iris.features, (ROWS, 4))
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}
    body = orjson.dumps({"inputs": [tensor]})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked all the way to the server
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    waker = RecordingWaker()
    async with activator(waker) as running, client(running) as http:
        response = await http.post("/v2/models/iris/infer", content=chunks())
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"] == "application/json"
        assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict(rows).tolist()
    assert waker.calls == []


@pytest.mark.usefixtures("warm")
@pytest.mark.parametrize(
    "host", ["iris.models", "iris.models:80", "IRIS.models.svc", "iris.models.svc.cluster.local:8080"]
)
async def test_every_cluster_dns_form_of_the_host_reaches_the_service(
    activator: ActivatorFactory, sklearn_iris: Trained, host: str
) -> None:
    """The body goes through as sent: gzip-encoded, which the model server decodes itself."""
    row = sklearn_iris.features[42]
    async with activator(RecordingWaker()) as running, client(running, host=host) as http:
        response = await http.post(
            "/v2/models/iris/infer",
            content=gzip.compress(orjson.dumps(infer_body(row))),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict([row]).tolist()


@pytest.mark.parametrize(
    "host", ["nothere.models", "iris.elsewhere.svc", "127.0.0.1:8012", "iris", "iris.models.example.com"]
)
async def test_a_host_that_names_no_known_service_gets_404(activator: ActivatorFactory, host: str) -> None:
    waker = RecordingWaker()
    async with activator(waker) as running, client(running, host=host) as http:
        response = await http.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"].startswith(f"Host {host!r} names no service this activator serves")
    assert waker.calls == []


async def test_a_ready_endpoint_that_refuses_the_connection_gives_502_naming_the_service(
    activator: ActivatorFactory, endpoints: EndpointTable
) -> None:
    gone = free_port()  # nothing listens there: the pod died after its endpoint was published
    endpoints.set(IRIS, [("127.0.0.1", gone)])
    async with activator(RecordingWaker()) as running, client(running) as http:
        response = await http.get("/v2/health/ready")
        assert response.status_code == 502
        assert response.json()["service"] == "models/iris"
        assert f"pod 127.0.0.1:{gone} did not answer" in response.json()["error"]


async def test_health_and_metrics_answer_on_the_admin_port(activator: ActivatorFactory) -> None:
    async with activator(RecordingWaker()) as running, httpx.AsyncClient(timeout=5) as http:
        admin = f"http://127.0.0.1:{running.admin_port}"
        assert (await http.get(f"{admin}/healthz")).text == "ok"
        metrics = (await http.get(f"{admin}/metrics")).text
        assert "kubeserve_activator_wake_to_first_forward_seconds_bucket" in metrics


async def test_readyz_says_503_until_the_first_lists_are_in(
    services: ServiceTable, endpoints: EndpointTable
) -> None:
    listed = False
    running = await server.start(TEST_CONFIG, services, endpoints, RecordingWaker(), lambda: listed)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.admin_port}", timeout=5) as admin:
            waiting = await admin.get("/readyz")
            assert waiting.status_code == 503 and "first lists" in waiting.text
            assert (await admin.get("/healthz")).status_code == 200, "alive all the same"
            listed = True
            assert (await admin.get("/readyz")).status_code == 200
    finally:
        await running.close()


def test_hop_by_hop_headers_and_those_connection_names_are_not_forwarded() -> None:
    headers = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Connection", "keep-alive, X-Session-Hop"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("X-Session-Hop", "1"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Content-Type", "application/json"),
            ]
        )
    )
    assert list(end_to_end(headers).items()) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "application/json"),
    ]


async def test_ready_endpoints_take_turns() -> None:
    endpoints = EndpointTable()
    endpoints.set(IRIS, [("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080)])
    async with aiohttp.ClientSession() as session:
        prober = ReadinessProber(endpoints, session)
        holder = Holder(ActivatorConfig(), endpoints, RecordingWaker(), ActivatorMetrics(), prober)
        picked = [(await holder.endpoint_for(IRIS))[0] for _ in range(6)]
    assert picked == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("iris.models", ("models", "iris")),
        ("iris.models.svc.cluster.local.", ("models", "iris")),
        ("iris.models.svc.other.domain", None),
        ("[::1]:8080", None),
        (".models", None),
    ],
)
def test_service_of_host(host: str, expected: tuple[str, str] | None) -> None:
    assert service_of_host(host) == expected
