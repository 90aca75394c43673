"""Holding requests until their service has a Ready pod: one wake per cold start, shared by every request
it holds, a deadline per request, and caps on how many are held."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator

from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.interfaces import Endpoint, Endpoints, Target, Waker
from kubeserve_activator.metrics import DEADLINE, HELD_LIMIT, WAKE_FAILED, ActivatorMetrics
from kubeserve_activator.probing import ReadinessProber


class Unavailable(Exception):
    """No pod for this request: the client gets 503 with Retry-After."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Wakeup:
    """One cold start of a target: the wake call, then the wait for a Ready endpoint."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.started = time.monotonic()
        self.waiters = 0
        self.forwarded = False


class Holder:
    """Gives each request an endpoint of its target, holding it while the target has none."""

    def __init__(
        self,
        config: ActivatorConfig,
        endpoints: Endpoints,
        waker: Waker,
        metrics: ActivatorMetrics,
        prober: ReadinessProber,
    ) -> None:
        self._config = config
        self._endpoints = endpoints
        self._waker = waker
        self._metrics = metrics
        self._prober = prober
        self._wakeups: dict[Target, _Wakeup] = {}
        self._held: Counter[Target] = Counter()
        self._turns: Counter[Target] = Counter()

    async def endpoint_for(self, target: Target) -> Endpoint:
        """A Ready endpoint, round-robin; when there is none, wake the target and wait for one."""
        if ready := self._endpoints.ready(target):
            return self._pick(target, ready)
        wakeup: _Wakeup | None = None
        with self._holding(target):
            try:
                async with asyncio.timeout(self._config.hold_seconds):
                    while not (ready := self._endpoints.ready(target)):
                        wakeup = await self._wait(target)
            except TimeoutError:
                raise Unavailable(
                    DEADLINE,
                    f"service {target} has no ready replica after {self._config.hold_seconds:g} s",
                ) from None
        if wakeup is not None and not wakeup.forwarded:
            wakeup.forwarded = True
            self._metrics.wake_to_first_forward.observe(time.monotonic() - wakeup.started)
        return self._pick(target, ready)

    def _pick(self, target: Target, ready: list[Endpoint]) -> Endpoint:
        turn = self._turns[target]
        self._turns[target] = turn + 1
        return ready[turn % len(ready)]

    @contextlib.contextmanager
    def _holding(self, target: Target) -> Iterator[None]:
        if self._held[target] >= self._config.max_held_per_target:
            raise Unavailable(
                HELD_LIMIT,
                f"service {target} already has {self._held[target]} requests waiting for a replica",
            )
        if self._held.total() >= self._config.max_held_total:
            raise Unavailable(HELD_LIMIT, f"the activator already holds {self._held.total()} requests")
        self._held[target] += 1
        self._metrics.held.labels(str(target)).inc()
        try:
            yield
        finally:
            self._held[target] -= 1
            if not self._held[target]:
                del self._held[target]
            self._metrics.held.labels(str(target)).dec()

    async def _wait(self, target: Target) -> _Wakeup:
        """Join the target's cold start (starting it if none runs); returns once it has an endpoint.

        The cold start is cancelled when its last waiter leaves (deadline or hang-up), so nothing waits
        on a service nobody is asking for; the next request wakes it again.
        """
        wakeup = self._wakeups.get(target)
        if wakeup is None:
            wakeup = _Wakeup(asyncio.create_task(self._cold_start(target)))
            self._wakeups[target] = wakeup
            wakeup.task.add_done_callback(lambda _: self._forget(target, wakeup))
            self._metrics.wakes.labels(str(target)).inc()
        wakeup.waiters += 1
        try:
            await asyncio.shield(wakeup.task)
        except Exception as error:  # the waker's own failure, named in the 503
            raise Unavailable(WAKE_FAILED, f"waking service {target} failed: {error}") from error
        finally:
            wakeup.waiters -= 1
            if not wakeup.waiters and not wakeup.task.done():
                wakeup.task.cancel()
        return wakeup

    async def _cold_start(self, target: Target) -> None:
        await self._waker.wake(target)
        probing = asyncio.create_task(self._prober.vouch_when_ready(target))
        try:
            while True:
                change = self._endpoints.changed(target)  # before the check, so no change slips between
                if self._endpoints.ready(target):
                    return
                await change
        finally:
            probing.cancel()

    def _forget(self, target: Target, wakeup: _Wakeup) -> None:
        if self._wakeups.get(target) is wakeup:
            del self._wakeups[target]
        if not wakeup.task.cancelled():
            wakeup.task.exception()  # retrieved here: every waiter may have left before it ended
