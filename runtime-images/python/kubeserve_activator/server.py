"""Starting the activator: the HTTP proxy on one port, the gRPC one on another, /healthz, /readyz and
/metrics on a third."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from kubeserve_activator.activity import RequestActivity
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.forwarding import Forwarder
from kubeserve_activator.h2c import GrpcForwarder
from kubeserve_activator.holding import Holder
from kubeserve_activator.interfaces import Endpoints, Targets, Waker
from kubeserve_activator.metrics import ActivatorMetrics
from kubeserve_activator.probing import ReadinessProber


@dataclass
class RunningActivator:
    proxy: web.AppRunner
    grpc: asyncio.Server
    admin: web.AppRunner
    session: aiohttp.ClientSession
    metrics: ActivatorMetrics
    activity: RequestActivity

    @property
    def port(self) -> int:
        return _bound_port(self.proxy)

    @property
    def grpc_port(self) -> int:
        port: int = self.grpc.sockets[0].getsockname()[1]
        return port

    @property
    def admin_port(self) -> int:
        return _bound_port(self.admin)

    async def close(self) -> None:
        self.grpc.close()
        await self.proxy.cleanup()
        await self.admin.cleanup()
        await self.session.close()


def _bound_port(runner: web.AppRunner) -> int:
    """The port the runner's one site listens on (the config may ask for 0: any free port)."""
    port: int = runner.addresses[0][1]
    return port


async def start(
    config: ActivatorConfig,
    targets: Targets,
    endpoints: Endpoints,
    waker: Waker,
    synced: Callable[[], bool] = lambda: True,
) -> RunningActivator:
    """`synced` says whether the cluster's first lists are in: `/readyz` answers 503 until then, since
    every Host is unknown (404) before them."""
    metrics = ActivatorMetrics()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_seconds),
        # Pass the body and headers as the client sent them: no decompression, no headers of our own.
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
    activity = RequestActivity()
    holder = Holder(config, endpoints, waker, metrics, ReadinessProber(endpoints, session))
    forwarder = Forwarder(config, targets, holder, metrics, session, activity)
    grpc_forwarder = GrpcForwarder(config, targets, endpoints, holder, metrics, activity)
    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{path:.*}", forwarder.handle)
    admin_app = web.Application()
    admin_app.router.add_get("/healthz", _healthz)
    admin_app.router.add_get("/readyz", functools.partial(_readyz, synced))
    admin_app.router.add_get("/metrics", functools.partial(_metrics, metrics))
    # A client that hangs up cancels its handler: a held request stops waiting at once. Bodies pass
    # as sent: a gzip body stays gzip, for the model server to decode.
    proxy = web.AppRunner(proxy_app, handler_cancellation=True, auto_decompress=False, access_log=None)
    admin = web.AppRunner(admin_app, access_log=None)
    for runner, port in ((proxy, config.port), (admin, config.admin_port)):
        await runner.setup()
        await web.TCPSite(runner, config.host, port).start()
    grpc = await asyncio.start_server(grpc_forwarder.handle, config.host, config.grpc_port)
    return RunningActivator(proxy, grpc, admin, session, metrics, activity)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(synced: Callable[[], bool], _: web.Request) -> web.Response:
    if synced():
        return web.Response(text="ok")
    return web.Response(status=503, text="the first lists of Services and EndpointSlices are not in yet")


async def _metrics(metrics: ActivatorMetrics, _: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})
