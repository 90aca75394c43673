"""Targets and Endpoints as in-memory tables that their owner fills: tests and benchmarks set them by
hand, and a watch of the cluster's Services and EndpointSlices can fill the same tables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from kubeserve_activator.interfaces import Endpoint, Probe, Target


class ServiceTable:
    """The services the activator serves (a `Targets`)."""

    def __init__(self, targets: Iterable[Target] = ()) -> None:
        self._targets = {(target.namespace, target.name): target for target in targets}
        self._addresses: dict[str, Target] = {}

    def add(self, target: Target, address: str | None = None) -> None:
        self._targets[(target.namespace, target.name)] = target
        if address is not None:
            self._addresses[address] = target

    def find(self, namespace: str, name: str) -> Target | None:
        return self._targets.get((namespace, name))

    def find_address(self, address: str) -> Target | None:
        return self._addresses.get(address)


class EndpointTable:
    """Each service's Ready endpoints (an `Endpoints`); `set` wakes whoever awaits `changed`."""

    def __init__(self) -> None:
        self._ready: dict[Target, list[Endpoint]] = {}
        self._starting: dict[Target, list[Probe]] = {}
        self.grpc_ports: dict[Target, int] = {}
        self._changes: dict[Target, asyncio.Future[None]] = {}

    def set(self, target: Target, ready: list[Endpoint]) -> None:
        self._ready[target] = list(ready)
        if (change := self._changes.pop(target, None)) and not change.done():
            change.set_result(None)

    def set_starting(self, target: Target, probes: list[Probe]) -> None:
        self._starting[target] = list(probes)

    def ready(self, target: Target) -> list[Endpoint]:
        return self._ready.get(target, [])

    def grpc_port(self, target: Target) -> int | None:
        return self.grpc_ports.get(target)

    def starting(self, target: Target) -> list[Probe]:
        ready = self.ready(target)
        return [probe for probe in self._starting.get(target, []) if probe.endpoint not in ready]

    def vouch(self, target: Target, endpoint: Endpoint) -> None:
        self.set(target, [*self.ready(target), endpoint])

    def changed(self, target: Target) -> Awaitable[object]:
        """A future, not a coroutine: one that is never awaited is no error. Shielded, so a cancelled
        awaiter leaves it pending for the others."""
        change = self._changes.get(target)
        if change is None:
            change = self._changes[target] = asyncio.get_running_loop().create_future()
        return asyncio.shield(change)
