"""Watch events: record what was seen, then mark the InferenceServices it concerns for reconciling."""

from __future__ import annotations

from typing import Any

import kopf

from kubeserve.api.common import GROUP, VERSION
from kubeserve.planning.naming import LABEL_SERVICE
from kubeserve.reconciler import Reconciler

CHILD_FILTER = {LABEL_SERVICE: kopf.PRESENT}


def _record(memo: Any, kind: str, event: kopf.RawEvent, body: kopf.Body) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    reconciler.view.record(kind, event.get("type"), body)
    return reconciler


@kopf.on.event(GROUP, VERSION, "inferenceservices")
async def inference_service(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    _record(memo, "InferenceService", event, body).enqueue(
        body.metadata.namespace or "", body.metadata.name or ""
    )


@kopf.on.event(GROUP, VERSION, "servingruntimes")
async def serving_runtime(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    _record(memo, "ServingRuntime", event, body).enqueue_all(body.metadata.namespace)


@kopf.on.event(GROUP, VERSION, "clusterservingruntimes")
async def cluster_serving_runtime(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    _record(memo, "ClusterServingRuntime", event, body).enqueue_all()


@kopf.on.event("", "v1", "serviceaccounts")
async def service_account(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Storage credentials and S3 settings come from ServiceAccounts: a change re-plans the namespace."""
    _record(memo, "ServiceAccount", event, body).enqueue_all(body.metadata.namespace)


async def _child(kind: str, event: kopf.RawEvent, body: kopf.Body, memo: Any) -> None:
    _record(memo, kind, event, body).enqueue(
        body.metadata.namespace or "", body.metadata.labels[LABEL_SERVICE]
    )


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_FILTER)
async def deployment(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _child("Deployment", event, body, memo)


@kopf.on.event("", "v1", "services", labels=CHILD_FILTER)
async def service(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _child("Service", event, body, memo)


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILD_FILTER)
async def autoscaler(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _child("HorizontalPodAutoscaler", event, body, memo)


@kopf.on.event("", "v1", "pods", labels=CHILD_FILTER)
async def pod(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _child("Pod", event, body, memo)
