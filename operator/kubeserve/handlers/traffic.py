"""Traffic backends: their CRDs coming and going.

The CRD watch tells the reconciler, which then re-plans every service for the
backend now in effect. The routes themselves are followed in `watches.py`.
"""

from __future__ import annotations

from typing import Any

import kopf

from kubeserve.apply.resources import HTTP_ROUTE, VIRTUAL_SERVICE, Resource
from kubeserve.reconciler import Reconciler

TRAFFIC_CRDS = {f"{r.plural}.{r.api_version.split('/')[0]}": r for r in (HTTP_ROUTE, VIRTUAL_SERVICE)}
"""CRD name -> the traffic resource it defines."""


def _served(resource: Resource, event_type: str | None, crd: kopf.Body) -> bool:
    """Whether the CRD is Established and serves the version Kubeserve writes."""
    if event_type == "DELETED" or crd.metadata.get("deletionTimestamp"):
        return False
    version = resource.api_version.split("/")[1]
    established = any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in crd.status.get("conditions") or []
    )
    return established and any(
        v.get("name") == version and v.get("served") for v in crd.spec.get("versions") or []
    )


@kopf.on.event(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", when=lambda name, **_: name in TRAFFIC_CRDS
)
async def traffic_crd(event: kopf.RawEvent, body: kopf.Body, name: str, memo: Any, **_: Any) -> None:
    resource = TRAFFIC_CRDS[name]
    reconciler: Reconciler = memo.reconciler
    reconciler.traffic_resource_changed(resource, _served(resource, event.get("type"), body))
