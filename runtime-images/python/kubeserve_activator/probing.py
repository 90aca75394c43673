"""Asking a waking service's starting pods whether they are ready, without waiting for the kubelet.

The kubelet probes readiness once per period (one second at least), so a model server that has just
loaded its model waits up to that long before its pod is Ready, and then the EndpointSlice must follow.
While requests are held, the activator asks the pod's own readiness endpoint (the one the kubelet asks,
named by the operator) every `interval`, and forwards as soon as it answers as the kubelet would count a
success (a status from 200 to 399). Knative's activator probes its pods for the same reason.
"""

from __future__ import annotations

import asyncio

import aiohttp

from kubeserve_activator.interfaces import Endpoints, Probe, Target

INTERVAL_SECONDS = 0.05
TIMEOUT_SECONDS = 0.5


class ReadinessProber:
    def __init__(
        self, endpoints: Endpoints, session: aiohttp.ClientSession, interval: float = INTERVAL_SECONDS
    ) -> None:
        self._endpoints = endpoints
        self._session = session
        self._interval = interval

    async def vouch_when_ready(self, target: Target) -> None:
        """Asks the target's starting pods until cancelled (the caller stops once it has an endpoint)."""
        while True:
            probes = self._endpoints.starting(target)
            answers = await asyncio.gather(*(self._ready(probe) for probe in probes))
            for probe, ready in zip(probes, answers, strict=True):
                if ready:
                    self._endpoints.vouch(target, probe.endpoint)
            await asyncio.sleep(self._interval)

    async def _ready(self, probe: Probe) -> bool:
        url = f"http://{probe.endpoint[0]}:{probe.port}{probe.path}"
        try:
            async with self._session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            ) as response:
                return 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError):  # not listening yet, or too busy loading to answer
            return False
