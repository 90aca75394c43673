"""Prometheus metrics of the operator, served at /metrics by `kubeserve.monitoring`.

Counters and histograms are updated where the work happens; the figures that
describe the current state (services by condition, queue depth, leadership)
are computed from the reconciler when Prometheus scrapes, so they are never
stale and cost nothing between scrapes.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kubeserve.reconciler import Reconciler

PREFIX = "kubeserve"
CONDITIONS = ("Ready", "PredictorReady", "TransformerReady")

RECONCILES = Counter(
    f"{PREFIX}_reconciles_total",
    "Reconciles finished, by the kind reconciled and how each ended.",
    ["kind", "result"],
)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors_total",
    "Reconciles that failed, by kind and cause (transient: retried; refused: the API server said no; "
    "bug: the operator's own unexpected error, retried).",
    ["kind", "cause"],
)
RECONCILE_SECONDS = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Time from the start of a reconcile to its end, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITES = Counter(
    f"{PREFIX}_writes_total",
    "Write requests sent, by the kind written and the action (apply, delete, status, event).",
    ["kind", "action"],
)


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
    """The text Prometheus scrapes: process and Python figures, the counters above, and the state."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(reconciler))
    return generate_latest(REGISTRY) + generate_latest(state)
