"""What the activator needs from the cluster, as three interfaces: which service a request is for, where
that service's Ready pods are, and how to ask for one."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

# A Ready pod's address: (IP, port).
Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Target:
    """A Service the activator holds requests for."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Targets(Protocol):
    def find(self, namespace: str, name: str) -> Target | None:
        """The service of that name if the activator serves it, else None (the request gets 404)."""

    def find_address(self, address: str) -> Target | None:
        """The service of that ClusterIP (a Host that is an IP) if the activator serves it, else None."""


class Endpoints(Protocol):
    def ready(self, target: Target) -> list[Endpoint]:
        """The target's Ready endpoints now; empty while it has none."""

    def changed(self, target: Target) -> Awaitable[object]:
        """Completes at the first change of the target's endpoints after this call."""


class Waker(Protocol):
    async def wake(self, target: Target) -> None:
        """Ask for a replica of the target (idempotent: asking twice asks for one); raise if refused."""
