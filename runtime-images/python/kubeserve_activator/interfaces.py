"""What the activator needs from the cluster, as three interfaces: which service a request is for, where
that service's Ready pods are, and how to ask for one."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# A Ready pod's address: (IP, port).
Endpoint = tuple[str, int]


class Probe(NamedTuple):
    """A starting pod: where requests would go once it is ready, and where to ask whether it is."""

    endpoint: Endpoint
    port: int
    path: str


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

    def grpc_port(self, target: Target) -> int | None:
        """The pods' gRPC container port, when the service has a gRPC port."""

    def starting(self, target: Target) -> list[Probe]:
        """The target's pods that are up but not Ready yet, and how to ask them; empty when none is, or
        when their readiness cannot be asked directly."""

    def vouch(self, target: Target, endpoint: Endpoint) -> None:
        """Count a starting pod as Ready (its own readiness check said so) until the cluster says more."""


class Waker(Protocol):
    async def wake(self, target: Target) -> None:
        """Ask for a replica of the target (idempotent: asking twice asks for one); raise if refused."""
