"""The proxied request path: find the service from the Host header, get an endpoint (held if need be),
and stream the request to it and its response back."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from kubeserve_activator.activity import RequestActivity
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.holding import Holder, Unavailable
from kubeserve_activator.hosts import target_of_host
from kubeserve_activator.interfaces import Target, Targets
from kubeserve_activator.metrics import ActivatorMetrics

# RFC 9110 section 7.6.1: meant for one connection, never forwarded (nor any header Connection names).
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)


def end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The headers to pass on: all but the hop-by-hop ones, repeated headers kept."""
    dropped = HOP_BY_HOP.union(
        token.strip().lower() for value in headers.getall("Connection", ()) for token in value.split(",")
    )
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in dropped)


def json_error(
    status: int, message: str, target: Target | None = None, retry_after: int | None = None
) -> web.Response:
    body: dict[str, str] = {"error": message}
    if target is not None:
        body["service"] = str(target)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


class Forwarder:
    """The aiohttp handler of every proxied request."""

    def __init__(
        self,
        config: ActivatorConfig,
        targets: Targets,
        holder: Holder,
        metrics: ActivatorMetrics,
        session: aiohttp.ClientSession,
        activity: RequestActivity,
    ) -> None:
        self._config = config
        self._targets = targets
        self._holder = holder
        self._metrics = metrics
        self._session = session
        self._activity = activity

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        target = target_of_host(self._targets, host, self._config.cluster_domain)
        if target is None:
            return json_error(
                404,
                f"Host {host!r} names no service this activator serves; expected <service>.<namespace>"
                f"[.svc[.{self._config.cluster_domain}]][:port] or its ClusterIP",
            )
        with self._activity.serving(target):
            return await self._forward(request, target)

    async def _forward(self, request: web.Request, target: Target) -> web.StreamResponse:
        try:
            ip, port = await self._holder.endpoint_for(target)
        except Unavailable as error:
            self._metrics.unavailable.labels(error.reason).inc()
            return json_error(503, str(error), target, self._config.retry_after_seconds)
        url = URL(f"http://{ip}:{port}{request.raw_path}", encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=end_to_end(request.headers),
                data=request.content if request.body_exists else None,
                allow_redirects=False,
            )
        except aiohttp.ClientError as error:
            return json_error(502, f"service {target}: pod {ip}:{port} did not answer: {error}", target)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(end_to_end(upstream.headers))
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        return response
