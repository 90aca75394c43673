"""Idle scale-down: a group of scale-to-zero Services goes to 0 replicas once idle for its window.

Warm traffic goes straight to the pods, so the pods tell: every few seconds each Ready pod's /metrics
gives `kubeserve_requests_total` (summed over its label sets) and `kubeserve_requests_in_flight`. A group
is idle when, for its whole window, no counter rose, nothing was in flight, and the activator held or
forwarded none of its requests. A pod that gives no such reading (no answer, no counter: a custom
transformer, say) gives no idleness: its group stays up, and the activator says so once.

Only groups with a Ready pod are watched: a group at zero costs nothing, and a group whose pods are not
Ready yet (or never get Ready) is never scaled down blindly. A pod that appears, or whose counter goes
back (a restart), counts as use: its window starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import NoReturn

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from kubeserve_activator.activity import RequestActivity
from kubeserve_activator.cluster import (
    IDLE_WINDOW_ANNOTATION,
    ClusterSide,
    ClusterTargets,
    GroupKey,
    Route,
    ScaleWaker,
)
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.interfaces import Endpoint, Endpoints, Target
from kubeserve_activator.kube_api import ApiError
from kubeserve_activator.metrics import ActivatorMetrics
from kubeserve_activator.server import RunningActivator

log = logging.getLogger(__name__)
FAMILY = "kubeserve_requests"  # a counter: its sample is `<family>_total`
REQUESTS, IN_FLIGHT = f"{FAMILY}_total", f"{FAMILY}_in_flight"


class NoSignal(Exception):
    """The pod's /metrics tell nothing of its use."""


@dataclass(frozen=True)
class Reading:
    requests: float
    in_flight: float


def read_metrics(text: str) -> Reading:
    """The two samples from a Prometheus text page, parsed by prometheus_client's own parser (only the
    lines of the two families: a model server's page is mostly histograms nobody reads here)."""
    wanted = "\n".join(line for line in text.splitlines() if FAMILY in line)
    totals = {REQUESTS: 0.0, IN_FLIGHT: 0.0}
    seen: set[str] = set()
    try:
        for family in text_string_to_metric_families(wanted):
            for sample in family.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
                    seen.add(sample.name)
            if family.name == FAMILY and family.type == "counter":
                seen.add(REQUESTS)  # declared with no label set used yet: nothing counted so far
    except ValueError as error:
        raise NoSignal(f"unreadable metrics: {error}") from error
    if REQUESTS not in seen:
        raise NoSignal(f"no {REQUESTS} in its /metrics")
    return Reading(totals[REQUESTS], totals[IN_FLIGHT])


def idle_window(route: Route) -> int | None:
    """The Service's window in seconds: a whole number >= 1, else None."""
    try:
        window = int(route.idle_window or "")
    except ValueError:
        return None
    return window if window >= 1 else None


@dataclass
class _Watched:
    last_used: float
    readings: dict[tuple[Target, Endpoint], float] = field(default_factory=dict)


class IdleScaler:
    def __init__(
        self,
        config: ActivatorConfig,
        targets: ClusterTargets,
        endpoints: Endpoints,
        waker: ScaleWaker,
        activity: RequestActivity,
        metrics: ActivatorMetrics,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._targets = targets
        self._endpoints = endpoints
        self._waker = waker
        self._activity = activity
        self._metrics = metrics
        self._session = session
        self._clock = clock
        self._watched: dict[GroupKey, _Watched] = {}
        self._told: set[tuple[Target, str]] = set()
        """(service, what) already logged: a missing signal or window is said once, not every round."""

    async def run(self) -> NoReturn:
        while True:
            try:
                await self.round()
            except ApiError as error:  # the API server's trouble: the next round tries again
                log.warning("idle scale-down: %s", error)
            except Exception:  # a bug must not end scale-down for good: said, and the next round runs
                log.exception("idle scale-down round failed")
            await asyncio.sleep(self._config.scrape_interval_seconds)

    async def round(self) -> None:
        """Read every watched pod at once, then scale down the groups idle for their window."""
        now = self._clock()
        groups = self._targets.groups()
        for key in set(self._watched) - set(groups):
            del self._watched[key]
        pods: dict[GroupKey, list[tuple[Target, Endpoint]]] = {}
        windows: dict[GroupKey, int] = {}
        for key, members in groups.items():
            ready = [
                (target, pod) for target, _ in members for pod in dict.fromkeys(self._endpoints.ready(target))
            ]
            window = self._window(members)
            if not ready or window is None:
                self._watched.pop(key, None)
                continue
            pods[key], windows[key] = ready, window
        scraped = [pod for ready in pods.values() for pod in ready]
        readings = dict(
            zip(
                scraped,
                await asyncio.gather(*(self._read(pod) for _, pod in scraped), return_exceptions=True),
                strict=True,
            )
        )
        idle: list[GroupKey] = []
        for key, ready in pods.items():
            watched = self._watched.setdefault(key, _Watched(last_used=now))
            targets = [target for target, _ in groups[key]]
            if self._used(watched, ready, readings) or self._activity.used_since(targets, watched.last_used):
                watched.last_used = now
            elif now - watched.last_used >= windows[key]:
                idle.append(key)
        await asyncio.gather(*(self._scale_down(key, groups[key], now) for key in idle))

    def _used(
        self,
        watched: _Watched,
        ready: list[tuple[Target, Endpoint]],
        readings: dict[tuple[Target, Endpoint], Reading | BaseException],
    ) -> bool:
        """Whether any pod of the group was used since the last round (or gave no signal); keeps the
        counters for the next."""
        used = False
        previous, watched.readings = watched.readings, {}
        for pod in ready:
            reading = readings[pod]
            if isinstance(reading, NoSignal):
                self._tell(
                    pod[0], "signal", "pod %s:%d gives no idleness (%s): the group stays up", *pod[1], reading
                )
                used = True
                continue
            if isinstance(reading, BaseException):
                raise reading
            self._told.discard((pod[0], "signal"))
            watched.readings[pod] = reading.requests
            used = used or reading.in_flight > 0 or previous.get(pod) != reading.requests
        return used

    def _window(self, members: list[tuple[Target, Route]]) -> int | None:
        """The longest of the group's windows; a Service without a valid one is said once and left out."""
        windows = []
        for target, route in members:
            if (window := idle_window(route)) is None:
                self._tell(
                    target,
                    "window",
                    "no valid %s (%r): not scaled down for it",
                    IDLE_WINDOW_ANNOTATION,
                    route.idle_window,
                )
            else:
                self._told.discard((target, "window"))
                windows.append(window)
        return max(windows, default=None)

    async def _read(self, pod: Endpoint) -> Reading:
        ip, port = pod
        # Bounds on the pod's own answer only, not on the wait for one of the session's connections:
        # with many pods, reads queue for the pool, and a queued read is no silent pod.
        seconds = min(self._config.scrape_timeout_seconds, self._config.scrape_interval_seconds)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        try:
            async with self._session.get(f"http://{ip}:{port}/metrics", timeout=timeout) as response:
                if response.status != 200:
                    raise NoSignal(f"/metrics answered {response.status}")
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise NoSignal(f"/metrics: {error!r}") from error
        return read_metrics(text)

    async def _scale_down(self, key: GroupKey, members: list[tuple[Target, Route]], decided: float) -> None:
        targets = [target for target, _ in members]
        try:
            result = await self._waker.scale_down(
                key, members, lambda: not self._activity.used_since(targets, decided)
            )
        except ApiError as error:
            log.warning("scaling down %s: %s", ", ".join(map(str, targets)), error)
            return
        if result.interrupted:  # a request or a concurrent change: a fresh window
            self._watched[key].last_used = self._clock()
        else:
            del self._watched[key]
        for target, route in members:
            if set(route.deployments) & set(result.scaled):
                self._metrics.scale_downs.labels(str(target)).inc()
        if result.scaled:
            log.info(
                "idle for its window: %s scaled to 0 (%s)",
                ", ".join(map(str, targets)),
                ", ".join(result.scaled),
            )

    def _tell(self, target: Target, what: str, message: str, *args: object) -> None:
        if (target, what) not in self._told:
            self._told.add((target, what))
            log.warning("service %s: " + message, target, *args)


@contextlib.asynccontextmanager
async def idle_scaling(
    config: ActivatorConfig, side: ClusterSide, running: RunningActivator, pods: Endpoints | None = None
) -> AsyncIterator[IdleScaler]:
    """The idle scale-down of the side's targets, in the background until the context ends. `pods`: the
    Ready pods as they are dialled, by default the side's endpoints (tests map them to loopback)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        scaler = IdleScaler(
            config,
            side.targets,
            pods or side.endpoints,
            side.waker,
            running.activity,
            running.metrics,
            session,
        )
        task = asyncio.create_task(scaler.run())
        try:
            yield scaler
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
