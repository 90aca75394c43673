"""Prometheus metrics: requests, errors, latency and in-flight requests per model and protocol;
batch sizes.

With several worker processes each writes its samples to PROMETHEUS_MULTIPROC_DIR and `/metrics`
sums them, so a scrape sees the pod and not whichever worker answered it.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

PROTOCOLS = ("v1", "v2", "grpc-v2")
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_name: str) -> None:
        self._registry = CollectorRegistry()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            multiprocess.MultiProcessCollector(self._registry)  # type: ignore[no-untyped-call]
            owner = None
        else:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            owner = self._registry
        labels = ("model", "protocol")
        requests = Counter("kubeserve_requests", "Inference requests.", labels, registry=owner)
        errors = Counter(
            "kubeserve_request_errors", "Inference requests that failed.", (*labels, "status"), registry=owner
        )
        latency = Histogram(
            "kubeserve_request_duration_seconds",
            "Inference request latency, from request received to response ready.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=owner,
        )
        in_flight = Gauge(
            "kubeserve_requests_in_flight",
            "Inference requests being served now.",
            labels,
            multiprocess_mode="livesum",
            registry=owner,
        )
        self.payload_events_dropped = Counter(
            "kubeserve_payload_events_dropped",
            "Payload log events dropped because the CloudEvents sink fell behind.",
            ("model",),
            registry=owner,
        ).labels(model_name)
        self.batch_size = Histogram(
            "kubeserve_batch_size",
            "Rows per batched model call (--max_batch_size); its count is the number of batches.",
            ("model",),
            buckets=_BATCH_BUCKETS,
            registry=owner,
        ).labels(model_name)
        self._errors = errors
        self._model_name = model_name
        self._trackers = {
            protocol: _Tracker(
                requests.labels(model_name, protocol),
                latency.labels(model_name, protocol),
                in_flight.labels(model_name, protocol),
            )
            for protocol in PROTOCOLS
        }

    def track(self, protocol: str) -> _Tracker:
        """The counters of one protocol: `started = t.start()` ... `t.finish(started)` per request."""
        return self._trackers[protocol]

    def error(self, protocol: str, status: int | str) -> None:
        self._errors.labels(self._model_name, protocol, str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self._registry)


class _Tracker:
    """Shared by concurrent requests: each keeps its own start time, so the tracker holds no state."""

    __slots__ = ("_in_flight", "_latency", "_requests")

    def __init__(self, requests: Counter, latency: Histogram, in_flight: Gauge) -> None:
        self._requests = requests
        self._latency = latency
        self._in_flight = in_flight

    def start(self) -> float:
        self._in_flight.inc()
        return time.perf_counter()

    def finish(self, started: float) -> None:
        self._latency.observe(time.perf_counter() - started)
        self._requests.inc()
        self._in_flight.dec()
