"""The activator's settings, one documented class."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivatorConfig:
    host: str = "0.0.0.0"
    # Proxied traffic; the Services of scaled-to-zero models point here while they have no Ready pod.
    port: int = 8080
    # Proxied gRPC (HTTP/2 without TLS): the operator routes a service's gRPC port here.
    grpc_port: int = 8081
    # /healthz and /metrics, apart from proxied traffic so no Host header can reach them.
    admin_port: int = 9090
    # How long a request may wait for a Ready pod before it gets 503.
    hold_seconds: float = 60.0
    # Sent with that 503 and with the 503 of a full activator.
    retry_after_seconds: int = 5
    # Held requests. A held body is not read past aiohttp's read buffer (flow control stops the client),
    # about 128 KiB each, so the total cap also bounds held memory: 1000 held is at most ~128 MiB.
    max_held_per_target: int = 500
    max_held_total: int = 1000
    # Connecting to a Ready pod; the response itself has no deadline (inference may be long).
    connect_timeout_seconds: float = 5.0
    cluster_domain: str = "cluster.local"
    # Idle scale-down: how often the Ready pods' /metrics are read, and how long one read may take.
    scrape_interval_seconds: float = 10.0
    scrape_timeout_seconds: float = 3.0
