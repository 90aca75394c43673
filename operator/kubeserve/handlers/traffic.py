"""Optional CRDs (the traffic backends' and KEDA's): their coming and going.

The CRD watch tells the reconciler, which then re-plans every service for the
traffic backend now in effect and for whether KEDA is installed. The children
of these kinds are followed in `cache/watches.py`.
"""

from __future__ import annotations

from typing import Any

import kopf

from kubeserve.apply.resources import OPTIONAL_KINDS, Resource
from kubeserve.reconciler import Reconciler

OPTIONAL_CRDS = {f"{r.plural}.{r.api_version.split('/')[0]}": r for r in OPTIONAL_KINDS}
"""CRD name -> the optional resource it defines."""


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
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", when=lambda name, **_: name in OPTIONAL_CRDS
)
async def optional_crd(event: kopf.RawEvent, body: kopf.Body, name: str, memo: Any, **_: Any) -> None:
    resource = OPTIONAL_CRDS[name]
    reconciler: Reconciler = memo.reconciler
    reconciler.optional_resource_changed(resource, _served(resource, event.get("type"), body))
