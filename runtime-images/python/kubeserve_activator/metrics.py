"""The activator's Prometheus metrics, in a registry of its own (several activators may share a process
in tests and benchmarks)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Unavailable reasons: the hold deadline passed, a cap on held requests was reached, the waker failed.
DEADLINE, HELD_LIMIT, WAKE_FAILED = "deadline", "held_limit", "wake_failed"
_WAKE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class ActivatorMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.held = Gauge(
            "kubeserve_activator_held_requests",
            "Requests waiting for a Ready pod of their service.",
            ("service",),
            registry=self.registry,
        )
        self.wakes = Counter(
            "kubeserve_activator_wakes",
            "Replicas asked for: one per cold start, however many requests it holds.",
            ("service",),
            registry=self.registry,
        )
        self.wake_to_first_forward = Histogram(
            "kubeserve_activator_wake_to_first_forward_seconds",
            "From asking for a replica to forwarding the first held request to it.",
            buckets=_WAKE_BUCKETS,
            registry=self.registry,
        )
        self.unavailable = Counter(
            "kubeserve_activator_unavailable_responses",
            "503 responses, by reason: deadline, held_limit or wake_failed.",
            ("reason",),
            registry=self.registry,
        )

        self.scale_downs = Counter(
            "kubeserve_activator_idle_scale_downs",
            "Services scaled to zero after their idle window.",
            ("service",),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
