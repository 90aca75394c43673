"""The operator's own HTTP endpoints: /healthz, /readyz and /metrics, on one port.

- /healthz (liveness) fails when one of the operator's background loops (the
  lease, the configuration watch) has died, which a restart would mend.
- /readyz (readiness) waits for the first full view of the cluster; a standby
  replica is ready too: it is warm, it only does not write. While Kubeserve's
  CRDs are not applied, it says so and how to apply them.
- /metrics is Prometheus' text format: the counters of `kubeserve.metrics`,
  and the figures that describe the current state (services by condition,
  queue depth, leadership), read from the reconciler when Prometheus
  scrapes, so they are never stale and cost nothing between scrapes.

aiohttp's server is already in memory (kopf and the API client use aiohttp),
so this costs no new HTTP stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubeserve.metrics import PREFIX
from kubeserve.missing_crds import MissingCrds
from kubeserve.reconciler import Reconciler

logger = logging.getLogger(__name__)

CONDITIONS = ("Ready", "PredictorReady", "TransformerReady")


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (every interface)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--http-address: {address!r} is not HOST:PORT")
    return host or "0.0.0.0", int(port)


class StateCollector(Collector):
    """The reconciler's state at scrape time."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler

    def collect(self) -> Iterator[Metric]:
        services = GaugeMetricFamily(
            f"{PREFIX}_inference_services",
            "InferenceServices known to the operator, by condition type and status.",
            labels=["condition", "status"],
        )
        tally: Tally[tuple[str, str]] = Tally()
        for body in self.reconciler.view.all("InferenceService"):
            found = {
                c.get("type"): c.get("status") for c in (body.get("status") or {}).get("conditions") or []
            }
            for condition in CONDITIONS:
                if condition in found or condition == "Ready":
                    tally[condition, str(found.get(condition, "Unknown"))] += 1
        for (condition, status), count in sorted(tally.items()):
            services.add_metric([condition, status], count)
        yield services
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "InferenceServices waiting for a reconcile (changed since their last one, or never seen).",
            value=self.reconciler.queue_depth(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_reconciles_in_progress",
            "Reconciles running now.",
            value=self.reconciler.in_progress(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_leader",
            "1 while this replica may act (holds the lease, or runs without leader election), else 0.",
            value=1.0 if self.reconciler.active.is_set() else 0.0,
        )


def exposition(reconciler: Reconciler) -> bytes:
    """The text Prometheus scrapes: process and Python figures, the counters, and the state."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(reconciler))
    return generate_latest(REGISTRY) + generate_latest(state)


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
