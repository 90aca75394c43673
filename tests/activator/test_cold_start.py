"""Requests for a service with no Ready pod: held, one wake shared by all, then answered by the model;
or a clear 503 when the deadline passes, the wake fails or too many are held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import pytest

from kubeserve_activator.interfaces import Probe, Target
from kubeserve_activator.tables import EndpointTable
from tests.activator.conftest import (
    IRIS,
    OTHER,
    ActivatorFactory,
    RecordingWaker,
    appear_after,
    client,
    infer_body,
    metric,
    until,
)
from tests.server.conftest import Server, Trained, running_server

INFER = "/v2/models/iris/infer"


async def test_a_cold_request_is_held_until_a_server_starts_then_gets_its_prediction(
    activator: ActivatorFactory, endpoints: EndpointTable, sklearn_iris: Trained, tmp_path: Path
) -> None:
    """The waker starts a real model server; the request waits through its whole start-up."""
    with contextlib.ExitStack() as servers:

        async def start_server(target: Target) -> None:
            server = await asyncio.to_thread(
                servers.enter_context, running_server(tmp_path, sklearn_iris.model_dir)
            )
            endpoints.set(target, [("127.0.0.1", server.http_port)])

        waker = RecordingWaker(start_server)
        row = sklearn_iris.features[100]
        async with activator(waker) as running, client(running) as http:
            response = await http.post(INFER, json=infer_body(row))
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict([row]).tolist()
            assert waker.calls == [IRIS]
            assert await metric(running, "kubeserve_activator_wake_to_first_forward_seconds_count") == 1
            assert await metric(running, "kubeserve_activator_held_requests", service="models/iris") == 0


async def test_fifty_concurrent_cold_requests_share_one_wake_and_all_get_their_answers(
    activator: ActivatorFactory, endpoints: EndpointTable, iris_backend: Server, sklearn_iris: Trained
) -> None:
    waker = RecordingWaker(appear_after(endpoints, iris_backend, delay=1.0))
    rows = sklearn_iris.features[::3][:50]
    async with activator(waker) as running, client(running) as http:
        started = time.monotonic()
        responses = await asyncio.gather(*(http.post(INFER, json=infer_body(row)) for row in rows))
        elapsed = time.monotonic() - started
        assert [response.status_code for response in responses] == [200] * 50
        answers = [response.json()["outputs"][0]["data"][0] for response in responses]
        assert answers == sklearn_iris.model.predict(rows).tolist()
        assert waker.calls == [IRIS]
        assert elapsed >= 1.0  # every one of them was held until the endpoint appeared
        assert await metric(running, "kubeserve_activator_wakes_total", service="models/iris") == 1
        assert await metric(running, "kubeserve_activator_wake_to_first_forward_seconds_count") == 1


async def test_past_the_deadline_a_held_request_gets_503_with_retry_after_naming_the_service(
    activator: ActivatorFactory,
) -> None:
    waker = RecordingWaker()  # asks, and nothing ever becomes Ready
    async with activator(waker, hold_seconds=1.0, retry_after_seconds=7) as running, client(running) as http:
        started = time.monotonic()
        response = await http.post(INFER, json={})
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert response.json()["service"] == "models/iris"
        assert "models/iris has no ready replica after 1 s" in response.json()["error"]
        assert 1.0 <= elapsed < 2.0
        assert (
            await metric(running, "kubeserve_activator_unavailable_responses_total", reason="deadline") == 1
        )
        assert await metric(running, "kubeserve_activator_held_requests", service="models/iris") == 0


async def test_a_failed_wake_gives_503_with_the_wakers_error(activator: ActivatorFactory) -> None:
    async def refuse(target: Target) -> None:
        raise RuntimeError(f"deployments.apps {target.name!r} not found")

    class RefusingWaker(RecordingWaker):
        async def wake(self, target: Target) -> None:
            await super().wake(target)
            await refuse(target)

    async with activator(RefusingWaker()) as running, client(running) as http:
        response = await http.get("/v2/health/ready")
        assert response.status_code == 503
        assert "Retry-After" in response.headers
        assert (
            response.json()["error"] == "waking service models/iris failed: deployments.apps 'iris' not found"
        )
        assert (
            await metric(running, "kubeserve_activator_unavailable_responses_total", reason="wake_failed")
            == 1
        )


async def test_a_client_that_hangs_up_while_held_is_dropped_quietly(
    activator: ActivatorFactory,
    endpoints: EndpointTable,
    iris_backend: Server,
    sklearn_iris: Trained,
    caplog: pytest.LogCaptureFixture,
) -> None:
    waker = RecordingWaker()
    caplog.set_level(logging.DEBUG)
    async with activator(waker) as running:
        _, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /v2/health/ready HTTP/1.1\r\nHost: iris.models.svc.cluster.local\r\n\r\n")
        await writer.drain()

        async def held(count: int) -> bool:
            return await metric(running, "kubeserve_activator_held_requests", service="models/iris") == count

        await until(lambda: held(1))
        writer.close()
        await writer.wait_closed()
        await until(lambda: held(0))
        # The service comes up later; the next request is forwarded at once, with no second wake.
        endpoints.set(IRIS, [("127.0.0.1", iris_backend.http_port)])
        async with client(running) as http:
            assert (await http.get("/v2/health/ready")).status_code == 200
        assert waker.calls == [IRIS]
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_caps_on_held_requests_per_service_and_in_total_give_503_at_once(
    activator: ActivatorFactory, endpoints: EndpointTable, iris_backend: Server
) -> None:
    async with (
        activator(RecordingWaker(), max_held_per_target=2, max_held_total=3) as running,
        client(running) as iris,
        client(running, host="other.models") as other,
    ):
        held = [asyncio.create_task(iris.get("/v2/health/ready")) for _ in range(2)]
        held.append(asyncio.create_task(other.get("/v2/health/ready")))

        async def all_held() -> bool:
            return (
                await metric(running, "kubeserve_activator_held_requests", service="models/iris") == 2
                and await metric(running, "kubeserve_activator_held_requests", service="models/other") == 1
            )

        await until(all_held)
        per_service, total = await iris.get("/v2/health/ready"), await other.get("/v2/health/ready")
        assert (per_service.status_code, total.status_code) == (503, 503)
        assert "models/iris already has 2 requests waiting" in per_service.json()["error"]
        assert "the activator already holds 3 requests" in total.json()["error"]
        assert (
            await metric(running, "kubeserve_activator_unavailable_responses_total", reason="held_limit") == 2
        )
        for target in (IRIS, OTHER):
            endpoints.set(target, [("127.0.0.1", iris_backend.http_port)])
        assert [response.status_code for response in await asyncio.gather(*held)] == [200, 200, 200]


async def test_a_starting_pod_that_says_it_is_ready_gets_the_held_requests_before_the_kubelet_agrees(
    activator: ActivatorFactory, endpoints: EndpointTable, sklearn_iris: Trained, tmp_path: Path
) -> None:
    """The waker starts a real server that the cluster never calls Ready: the activator's own readiness
    probe of the starting pod is what lets the request through."""
    with contextlib.ExitStack() as servers:

        async def start_server(target: Target) -> None:
            server = await asyncio.to_thread(
                servers.enter_context, running_server(tmp_path, sklearn_iris.model_dir)
            )
            endpoint = ("127.0.0.1", server.http_port)
            endpoints.set_starting(target, [Probe(endpoint, server.http_port, "/v2/health/ready")])

        waker = RecordingWaker(start_server)
        row = sklearn_iris.features[7]
        async with activator(waker, hold_seconds=30) as running, client(running) as http:
            response = await http.post(INFER, json=infer_body(row))
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict([row]).tolist()
            assert waker.calls == [IRIS]


async def test_a_starting_pod_whose_readiness_check_fails_gets_nothing(
    activator: ActivatorFactory, endpoints: EndpointTable, iris_backend: Server
) -> None:
    """The server answers, but 404 at the probed path is not ready: the request waits out its deadline."""
    endpoint = ("127.0.0.1", iris_backend.http_port)
    endpoints.set_starting(IRIS, [Probe(endpoint, iris_backend.http_port, "/not/a/health/path")])
    async with activator(RecordingWaker(), hold_seconds=1.0) as running, client(running) as http:
        response = await http.get("/v2/health/ready")
        assert response.status_code == 503
        assert "no ready replica after 1 s" in response.json()["error"]
