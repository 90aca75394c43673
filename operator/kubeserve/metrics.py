"""The operator's counters and histograms, updated where the work happens.

`kubeserve.monitoring` serves them at /metrics, beside the figures it reads
from the reconciler at scrape time. This module imports neither, so the
reconciler imports it without a cycle.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PREFIX = "kubeserve"

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
