"""The activator on loopback, in the test's event loop, in front of real `kubeserve-server` processes.

The cluster's side is played by in-memory tables the tests change, and by a waker that records each
call and then makes the backend's endpoint appear (after a delay, or once it has started a server).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.interfaces import Target
from kubeserve_activator.server import RunningActivator, start
from kubeserve_activator.tables import EndpointTable, ServiceTable
from tests.server.conftest import Server, Trained, iris_features, running_server, sklearn_iris

__all__ = ["iris_features", "sklearn_iris"]  # fixtures reused from the model server's tests

IRIS = Target("models", "iris")
OTHER = Target("models", "other")
TEST_CONFIG = ActivatorConfig(host="127.0.0.1", port=0, grpc_port=0, admin_port=0, hold_seconds=20)


class RecordingWaker:
    """Records each wake; then runs `on_wake` (for example: make the backend's endpoint appear)."""

    def __init__(self, on_wake: Callable[[Target], Coroutine[Any, Any, None]] | None = None) -> None:
        self.calls: list[Target] = []
        self._on_wake = on_wake
        self._tasks: set[asyncio.Task[None]] = set()

    async def wake(self, target: Target) -> None:
        self.calls.append(target)
        if self._on_wake is not None:
            task = asyncio.create_task(self._on_wake(target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def appear_after(
    table: EndpointTable, server: Server, delay: float
) -> Callable[[Target], Coroutine[Any, Any, None]]:
    """An `on_wake` that publishes the server's endpoint for the woken target after `delay` seconds."""

    async def publish(target: Target) -> None:
        await asyncio.sleep(delay)
        table.set(target, [("127.0.0.1", server.http_port)])

    return publish


@pytest.fixture(scope="session")
def iris_backend(tmp_path_factory: pytest.TempPathFactory, sklearn_iris: Trained) -> Iterator[Server]:
    """A ready iris server, the pod that "becomes Ready" when a waker publishes its endpoint."""
    with running_server(tmp_path_factory.mktemp("logs"), sklearn_iris.model_dir) as server:
        yield server


@pytest.fixture
def services() -> ServiceTable:
    return ServiceTable([IRIS, OTHER])


@pytest.fixture
def endpoints() -> EndpointTable:
    return EndpointTable()


ActivatorFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningActivator]]


@pytest.fixture
def activator(services: ServiceTable, endpoints: EndpointTable) -> ActivatorFactory:
    """`async with activator(waker, hold_seconds=...)`: an activator on free loopback ports."""

    @contextlib.asynccontextmanager
    async def running(waker: RecordingWaker, **settings: Any) -> AsyncIterator[RunningActivator]:
        started = await start(replace(TEST_CONFIG, **settings), services, endpoints, waker)
        try:
            yield started
        finally:
            await started.close()

    return running


def client(running: RunningActivator, host: str = "iris.models", timeout: float = 60) -> httpx.AsyncClient:
    """A client of the proxy port that names a service in its Host header."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{running.port}", headers={"Host": host}, timeout=timeout
    )


def infer_body(row: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row.tolist()}]}


async def metric(running: RunningActivator, name: str, **labels: str) -> float:
    """One sample of the activator's /metrics, read over HTTP from its admin port (0 if absent)."""
    async with httpx.AsyncClient(timeout=5) as admin:
        text = (await admin.get(f"http://127.0.0.1:{running.admin_port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    """Poll an async condition until it holds; fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)
