"""The operator's own HTTP endpoints: /healthz, /readyz and /metrics, on one port.

- /healthz (liveness) fails when one of the operator's background loops (the
  lease, the configuration watch) has died, which a restart would mend.
- /readyz (readiness) waits for the first full view of the cluster; a standby
  replica is ready too: it is warm, it only does not write. While Kubeserve's
  CRDs are not applied, it says so and how to apply them.
- /metrics is Prometheus' text format (`kubeserve.metrics`).

aiohttp's server is already in memory (kopf and the API client use aiohttp),
so this costs no new HTTP stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kubeserve.metrics import exposition
from kubeserve.missing_crds import MissingCrds
from kubeserve.reconciler import Reconciler

logger = logging.getLogger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (every interface)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--http-address: {address!r} is not HOST:PORT")
    return host or "0.0.0.0", int(port)


def build_app(
    reconciler: Reconciler, loops: Callable[[], Collection[asyncio.Task[None]]], missing: MissingCrds
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        dead = [task.get_name() for task in loops() if task.done()]
        if dead:
            return web.Response(status=500, text=f"stopped: {', '.join(dead)}\n")
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if missing.names:
            return web.Response(status=503, text=missing.message() + "\n")
        if not reconciler.synced.is_set():
            return web.Response(status=503, text="waiting for the first full view of the cluster\n")
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=exposition(reconciler), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(
    address: str,
    reconciler: Reconciler,
    loops: Callable[[], Collection[asyncio.Task[None]]],
    missing: MissingCrds,
) -> web.AppRunner:
    runner = web.AppRunner(build_app(reconciler, loops, missing), access_log=None)
    await runner.setup()
    host, port = parse_address(address)
    await web.TCPSite(runner, host, port).start()
    logger.info("serving /healthz, /readyz and /metrics on %s:%d", host, port)
    return runner
