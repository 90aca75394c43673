"""Kubernetes Events on an InferenceService: what a person sees in `kubectl describe isvc`."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Mapping
from typing import Any, Literal

from kubeserve.apply.client import KubeApi
from kubeserve.apply.resources import EVENT

EventType = Literal["Normal", "Warning"]


def timestamp() -> str:
    """Now, as Kubernetes writes its Time fields (an Event's, a condition's lastTransitionTime)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(
    involved: Mapping[str, Any], event_type: EventType, reason: str, message: str, now: str
) -> dict[str, Any]:
    metadata = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
        },
        "type": event_type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "kubeserve"},
        "reportingComponent": "kubeserve",
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post_event(
    api: KubeApi, involved: Mapping[str, Any], event_type: EventType, reason: str, message: str, now: str
) -> None:
    await api.create(
        EVENT, involved["metadata"]["namespace"], build_event(involved, event_type, reason, message, now)
    )
