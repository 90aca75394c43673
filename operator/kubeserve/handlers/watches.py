"""Watch events: record what was seen, then mark the InferenceServices it concerns for reconciling.

Recording happens in kopf index handlers, and that is what keeps a restart
silent: kopf holds back every other handler until each indexed resource has
been listed, so the first reconcile already sees every child, pod and runtime,
instead of finding "nothing there" and re-creating it. (Index handlers return
nothing, so kopf's own indices stay empty; DELETED events, which skip indexing,
are recorded by the event handler.)

Children (and their pods) are watched through a server-side label selector, so
the API server sends only objects that carry a service label: in a big cluster
the operator never receives, parses or keeps anybody else's pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from kubeserve.api.common import GROUP, VERSION
from kubeserve.planning.naming import LABEL_SERVICE
from kubeserve.reconciler import Reconciler

Enqueue = Callable[[Reconciler, Mapping[str, Any]], None]

CHILD_RESOURCES = (
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("", "v1", "pods", "Pod"),
)
"""What the operator creates, and the pods its Deployments create."""

CHILD_FILTER = {LABEL_SERVICE: kopf.PRESENT}
"""The children's label, also checked client-side: the handlers read it, whatever the server sent."""


def _service(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    reconciler.enqueue(body["metadata"]["namespace"], body["metadata"]["name"])


def _namespace(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    """Runtimes and ServiceAccounts feed the plans of every service in their namespace."""
    reconciler.enqueue_all(body["metadata"]["namespace"])


def _everywhere(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    reconciler.enqueue_all()


def _owner(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    metadata = body["metadata"]
    reconciler.enqueue(metadata["namespace"], metadata["labels"][LABEL_SERVICE])


def _watch(kind: str, group: str, version: str, plural: str, enqueue: Enqueue, child: bool = False) -> None:
    """Register the recording index handler and the enqueuing event handler of one resource."""
    labels = CHILD_FILTER if child else None

    @kopf.index(group, version, plural, id=f"view-{plural}", labels=labels)
    async def record(body: kopf.Body, memo: Any, **_: Any) -> None:
        reconciler: Reconciler = memo.reconciler
        reconciler.view.record(kind, None, body)

    @kopf.on.event(group, version, plural, id=f"enqueue-{plural}", labels=labels)
    async def notice(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
        reconciler: Reconciler = memo.reconciler
        if event["type"] == "DELETED":
            reconciler.view.record(kind, "DELETED", event["object"])
        enqueue(reconciler, event["object"])


def select_children(settings: kopf.OperatorSettings) -> None:
    """Have the API server filter children by the service label (kopf's `labels=` filters client-side)."""
    for group, version, plural, _ in CHILD_RESOURCES:
        settings.watching.label_selectors[group, version, plural] = LABEL_SERVICE


async def _child(kind: str, event: kopf.RawEvent, body: kopf.Body, memo: Any) -> None:
    """Record a child of a kind watched outside this module, and mark its service."""
    reconciler: Reconciler = memo.reconciler
    reconciler.view.record(kind, event.get("type"), event["object"])
    _owner(reconciler, event["object"])


_watch("InferenceService", GROUP, VERSION, "inferenceservices", _service)
_watch("ServingRuntime", GROUP, VERSION, "servingruntimes", _namespace)
_watch("ClusterServingRuntime", GROUP, VERSION, "clusterservingruntimes", _everywhere)
_watch("ServiceAccount", "", "v1", "serviceaccounts", _namespace)
for _group, _version, _plural, _kind in CHILD_RESOURCES:
    _watch(_kind, _group, _version, _plural, _owner, child=True)
