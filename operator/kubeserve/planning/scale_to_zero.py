"""Scale to zero: a component's Service routes to its Ready pods, or to the activator while none is.

Warm traffic never passes through the activator (bench/README.md: a proxy in
the path costs every request). So the component's Service `<isvc>-<component>`
has no selector, and its one EndpointSlice (`<isvc>-<component>-routing`),
planned here from what the operator observes, lists:

- the Ready addresses of the pods, which a headless Service
  `<isvc>-<component>-pods` (the component's selector) has Kubernetes' own
  EndpointSlice controller list, with the container ports; or, when none is
  Ready,
- the Ready addresses of the activator Service's slices, every Service port
  mapped to the activator's port `http`: the activator holds the request,
  scales the Deployment (named by an annotation of the Service) to 1 through
  its `scale` subresource, and forwards the request once a pod is Ready; the
  pod's readiness then brings the routing back to the pods.

A Service that had a selector before keeps what Kubernetes' controllers made
of it (its EndpointSlices, and its Endpoints object, which is then mirrored
into a slice): they route to the pods as they were, so they are deleted.

The Deployment's replicas are not planned (the activator wakes it, and nothing
must apply it back to 0 or 1). The Service names every Deployment of the
component (a canary makes two), the idle window after which the activator,
which reads the pods' request counters, scales them to zero, and the pods'
readiness probe, which the activator asks itself while a woken pod starts.
A gRPC port goes to the activator's own gRPC port. This is the contract with
the activator (`runtime-images/python/kubeserve_activator`), and holds only
while the operator's configuration sets `scaleToZero.enabled`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kubeserve.planning.naming import GROUP_PREFIX
from kubeserve.planning.scaling_mode import InvalidAnnotation
from kubeserve.planning.service import build_service

LABEL_SCALE_TO_ZERO = f"{GROUP_PREFIX}/scale-to-zero"
"""On the Service clients call: the activator serves requests for Services with this label only."""
DEPLOYMENT_ANNOTATION = f"{GROUP_PREFIX}/deployment"
"""The component's Deployments, comma-separated: the activator wakes each from 0 to 1."""
IDLE_WINDOW_ANNOTATION = f"{GROUP_PREFIX}/idle-window-seconds"
"""On the Service: the seconds without a request after which the activator scales it to zero."""
WINDOW_ANNOTATION = f"{GROUP_PREFIX}/scale-to-zero-window"
"""On the InferenceService: its idle window, overriding the operator's `scaleToZero.idleWindowSeconds`."""
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
PODS_SERVICE_ANNOTATION = f"{GROUP_PREFIX}/pods-service"
READINESS_ANNOTATION = f"{GROUP_PREFIX}/readiness-probe"
"""On the Service: `<container port>:<path>` of the pods' HTTP readiness probe, which the activator asks
directly while a woken pod starts (Ready by the kubelet only at its next probe, up to a period later)."""
SLICE_SERVICE = "kubernetes.io/service-name"
SLICE_MANAGER = "endpointslice.kubernetes.io/managed-by"
MANAGER = "serving.kubeserve.io"
MIRRORING = "endpointslicemirroring-controller.k8s.io"
"""Manager of the slices Kubernetes mirrors from a selector-less Service's Endpoints object."""
ACTIVATOR_PORT = "http"
"""The activator Service's port every routed port goes to while the component is at zero..."""
ACTIVATOR_GRPC_PORT = "grpc"
"""...but a gRPC port (named `h2c` or `grpc...`, KServe's names), which goes to this one when the
activator's Service has it: the activator holds HTTP/2 connections there."""

Body = Mapping[str, Any]
Target = Literal["pods", "activator", "nowhere"]
Leftover = tuple[str, str, str | None]
"""(kind, name, uid) of an object to delete."""


def idle_window_seconds(annotations: Mapping[str, str], default: int) -> int:
    """The service's idle window: whole seconds (`300`) or a duration of hours, minutes and seconds
    (`1h`, `5m`, `1m30s`), at least 1 s. Raises InvalidAnnotation naming it and what is allowed."""
    value = annotations.get(WINDOW_ANNOTATION)
    if value is None:
        return default
    text = value.strip()
    seconds = int(text) if text.isascii() and text.isdecimal() else None
    if seconds is None and text and (match := _DURATION.fullmatch(text)):
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or seconds < 1:
        raise InvalidAnnotation(
            f"metadata.annotations[{WINDOW_ANNOTATION}] is {value!r}: use a positive number of seconds "
            "(300) or a duration such as 5m, 90s or 1h30m"
        )
    return seconds


def pods_service_name(component_name: str) -> str:
    return f"{component_name}-pods"


def routing_slice_name(component_name: str) -> str:
    return f"{component_name}-routing"


@dataclass(frozen=True)
class Routing:
    objects: tuple[dict[str, Any], ...]
    """The public Service, the pods Service and the routing EndpointSlice."""
    target: Target
    """Where the routing slice sends requests: `nowhere` when no pod and no activator pod is Ready."""
    leftovers: tuple[Leftover, ...] = ()
    """What Kubernetes made of the Service while it had a selector, which would route beside the routing
    slice: its controller's slices, and its Endpoints object with the slice mirrored from it."""


def _ready_addresses(slices: Sequence[Body]) -> list[str]:
    """The IPv4 addresses of the slices' Ready endpoints (no condition counts as Ready, as the API says)."""
    addresses = {
        address
        for piece in slices
        if piece.get("addressType") == "IPv4"
        for endpoint in piece.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for address in endpoint.get("addresses") or []
    }
    return sorted(addresses)


def _of_service(slices: Sequence[Body], service: str) -> list[Body]:
    return [s for s in slices if (s["metadata"].get("labels") or {}).get(SLICE_SERVICE) == service]


def _port_pairs(piece: Body) -> set[tuple[str, int]]:
    return {(p.get("name") or "", p.get("port", 0)) for p in piece.get("ports") or []}


def is_grpc_port(name: str) -> bool:
    return name == "h2c" or name.startswith("grpc")


def _activator_route(
    slices: Sequence[Body], service_ports: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The activator's Ready addresses behind one pair of port numbers (`http`, and `grpc` if it has
    one), and every Service port mapped to one of them."""
    by_ports: dict[tuple[int, int | None], list[Body]] = {}
    for piece in sorted(slices, key=lambda s: str(s["metadata"]["name"])):
        named = {p.get("name"): p.get("port") for p in piece.get("ports") or []}
        http, grpc = named.get(ACTIVATOR_PORT), named.get(ACTIVATOR_GRPC_PORT)
        if isinstance(http, int):
            by_ports.setdefault((http, grpc if isinstance(grpc, int) else None), []).append(piece)
    for (http, grpc), pieces in by_ports.items():
        addresses = _ready_addresses(pieces)
        if addresses:
            ports = [
                {
                    "name": p["name"],
                    "port": grpc if grpc and is_grpc_port(p["name"]) else http,
                    "protocol": "TCP",
                }
                for p in service_ports
            ]
            return addresses, ports
    return [], []


def _leftovers(slices: Sequence[Body], service: str) -> tuple[Leftover, ...]:
    found: list[Leftover] = []
    for piece in _of_service(slices, service):
        metadata = piece["metadata"]
        manager = (metadata.get("labels") or {}).get(SLICE_MANAGER)
        if manager == MANAGER:
            continue
        found.append(("EndpointSlice", metadata["name"], metadata.get("uid")))
        if manager == MIRRORING:
            found.append(("Endpoints", service, None))
    return tuple(sorted(set(found), key=lambda item: (item[0], item[1])))


def plan_routing(
    metadata: dict[str, Any],
    selector: dict[str, str],
    container_ports: list[dict[str, Any]],
    observed_slices: Sequence[Body],
    activator_slices: Sequence[Body],
    deployments: Sequence[str],
    idle_seconds: int,
    readiness: tuple[int, str] | None = None,
) -> Routing:
    """The Services and routing slice of the component `metadata` names.

    `observed_slices` are the component's watched EndpointSlices (the pods
    Service's, among others); `activator_slices`, the activator Service's;
    `deployments`, the component's (one per track); `readiness`, the pods'
    readiness probe that the activator may ask directly.
    """
    name = metadata["name"]
    pods_name = pods_service_name(name)
    labels = metadata["labels"]
    public = build_service(
        {
            **metadata,
            "labels": {**labels, LABEL_SCALE_TO_ZERO: "true"},
            "annotations": {
                DEPLOYMENT_ANNOTATION: ",".join(deployments),
                PODS_SERVICE_ANNOTATION: pods_name,
                IDLE_WINDOW_ANNOTATION: str(idle_seconds),
                **({READINESS_ANNOTATION: f"{readiness[0]}:{readiness[1]}"} if readiness else {}),
            },
        },
        selector,
        container_ports,
    )
    del public["spec"]["selector"]
    pods = build_service({**metadata, "name": pods_name}, selector, container_ports)
    pods["spec"]["clusterIP"] = "None"
    service_ports = public["spec"]["ports"]
    pod_ports = [
        {"name": p["name"], "port": p["targetPort"], "protocol": p["protocol"]} for p in service_ports
    ]
    wanted = _port_pairs({"ports": pod_ports})
    pod_slices = [s for s in _of_service(observed_slices, pods_name) if _port_pairs(s) == wanted]
    addresses, ports = _ready_addresses(pod_slices), pod_ports
    target: Target = "pods"
    if not addresses:
        addresses, ports = _activator_route(activator_slices, service_ports)
        target = "activator" if addresses else "nowhere"
        ports = ports or pod_ports
    routing = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            **metadata,
            "name": routing_slice_name(name),
            "labels": {**labels, SLICE_SERVICE: name, SLICE_MANAGER: MANAGER},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}} for address in addresses],
        "ports": ports,
    }
    return Routing((public, pods, routing), target, _leftovers(observed_slices, name))
