"""The activator as bench/activator.py runs it: its own process on uvloop, as a pod would run it, with 100
services in its tables, all served by one backend on loopback; stopped by SIGTERM.

    python bench/servers/activator_process.py PORT ADMIN_PORT BACKEND_PORT [READY_AFTER]

Without READY_AFTER every service is warm (its endpoint set). With it, none is, and the waker makes the
woken service's endpoint appear READY_AFTER seconds after the wake, as a pod becoming Ready.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.interfaces import Target
from kubeserve_activator.server import start
from kubeserve_activator.tables import EndpointTable, ServiceTable

SERVICES = 100


class DelayedWaker:
    def __init__(self, endpoints: EndpointTable, backend_port: int, delay: float) -> None:
        self._endpoints, self._port, self._delay = endpoints, backend_port, delay

    async def wake(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self._delay, self._endpoints.set, target, [("127.0.0.1", self._port)])


async def serve(port: int, admin_port: int, backend_port: int, ready_after: float | None) -> None:
    targets = [
        Target("models", "iris"),
        *(Target("models", f"model-{index}") for index in range(SERVICES - 1)),
    ]
    endpoints = EndpointTable()
    if ready_after is None:
        for target in targets:
            endpoints.set(target, [("127.0.0.1", backend_port)])
    config = ActivatorConfig(host="127.0.0.1", port=port, admin_port=admin_port)
    waker = DelayedWaker(endpoints, backend_port, ready_after or 0.0)
    running = await start(config, ServiceTable(targets), endpoints, waker)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await running.close()


if __name__ == "__main__":
    port, admin_port, backend_port = (int(arg) for arg in sys.argv[1:4])
    uvloop.run(serve(port, admin_port, backend_port, float(sys.argv[4]) if len(sys.argv) > 4 else None))
