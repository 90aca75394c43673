"""How a canary's share of traffic reaches it: weighted routes, or the replica ratio behind one Service.

Backends, from `traffic.backend` in the operator's configuration:

- `gateway`: one Gateway API `HTTPRoute` per InferenceService, attached to the
  configured Gateway, host `<isvc>-<namespace>.<domain>`, with weighted
  `backendRefs` to one Service per track of the entry component
  (`<isvc>-<component>-stable`, `<isvc>-<component>-canary`).
- `istio`: the same split as an Istio `VirtualService`, bound to the same Gateway.
- `service`: nothing extra. The component's Service selects the pods of both
  tracks, so the split follows the replica ratio (see `rollout.track_replicas`):
  approximate, and the only split available without a gateway.
- `auto` (the default): `gateway` when the cluster serves HTTPRoutes, else
  `istio` when it serves VirtualServices, else `service`. An explicit `gateway`
  or `istio` whose CRD the cluster does not serve falls back to `service` too.

Only the entry component (the transformer if there is one, else the predictor)
is routed by weight; the transformer reaches the predictor through the
predictor's Service, so a predictor canary behind a transformer is split by
replica ratio.

Scale to zero: a route must reach the activator while the entry component is
idle, so for such a component it sends everything to the component's own
Service (whose routing slice lists the Ready pods of both tracks, or the
activator), and a canary is split there by replica ratio; no track Services,
no mirror.

Mirroring: the annotation `serving.kubeserve.io/mirror-percent: "<0-100>"` on
the InferenceService sends a copy of that share of the requests to the canary
(a shadow: its responses are dropped) once the canary is Ready, besides the
canary's own weighted share. Gateway API's `RequestMirror` filter and Istio's
`mirror` carry it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from kubeserve.config import OperatorConfig
from kubeserve.planning.naming import GROUP_PREFIX, child_metadata
from kubeserve.planning.rollout import CANARY, LABEL_TRACK, STABLE, Rollout
from kubeserve.planning.service import HTTP_PORT, build_service

Backend = Literal["gateway", "istio", "service"]
MIRROR_ANNOTATION = f"{GROUP_PREFIX}/mirror-percent"
PERCENT = re.compile("[0-9]{1,3}")
SHOWN_CHARACTERS = 32
"""Of a bad annotation value in a message: an annotation may be hundreds of KB."""
GATEWAY_API = "gateway.networking.k8s.io"


class TrafficError(ValueError):
    """The service cannot be routed as asked; `reason` is the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def effective_backend(configured: str, gateway_served: bool, istio_served: bool) -> Backend:
    if configured in ("auto", "gateway") and gateway_served:
        return "gateway"
    if configured in ("auto", "istio") and istio_served:
        return "istio"
    return "service"


def ingress_host(service: str, namespace: str, domain: str) -> str:
    return f"{service}-{namespace}.{domain}"


def mirror_percent(annotations: Mapping[str, str]) -> int | None:
    """The annotation's percent: one to three digits 0-9, at most 100.

    `str.isdigit` and `int` also take other scripts' digits (Arabic-Indic, say) and
    superscripts ("²", which `int` then refuses), `int` takes signs, spaces
    and underscores, and refuses more than 4300 digits: none of those is what
    a person means here, and each must end as a condition, not an exception.
    """
    value = annotations.get(MIRROR_ANNOTATION)
    if value is None:
        return None
    if not (PERCENT.fullmatch(value) and int(value) <= 100):
        shown = repr(value) if len(value) <= SHOWN_CHARACTERS else f"{value[:SHOWN_CHARACTERS]!r}…"
        raise TrafficError(
            "InvalidMirrorPercent",
            f"annotation {MIRROR_ANNOTATION} must be a whole number from 0 to 100 in digits 0-9, not {shown}",
        )
    return int(value)


def track_service_name(component_name: str, track: str) -> str:
    """`<isvc>-<component>-<track>`: a DNS label, as the schema bounds the service's name
    (`MAX_NAME_LENGTH`)."""
    return f"{component_name}-{track}"


def _weights(rollout: Rollout) -> list[tuple[str, int]]:
    """(track, weight); a canary that is not Ready yet is listed with weight 0."""
    weights = [(STABLE, rollout.stable_percent)]
    if rollout.in_canary:
        weights.append((CANARY, rollout.canary_percent))
    return weights


def _mirrored(rollout: Rollout, percent: int | None) -> bool:
    return percent is not None and percent > 0 and rollout.canary_percent > 0


def _backends(component_name: str, rollout: Rollout, direct: bool) -> list[tuple[str, int]]:
    """(Service, weight) a route sends to: a Service per track, or the component's own when `direct`."""
    if direct:
        return [(component_name, 100)]
    return [(track_service_name(component_name, track), weight) for track, weight in _weights(rollout)]


def _http_route(
    metadata: dict[str, Any],
    host: str,
    config: OperatorConfig,
    component_name: str,
    backends: list[tuple[str, int]],
    mirror: int | None,
) -> dict[str, Any]:
    gateway = config.traffic.gateway
    rule: dict[str, Any] = {
        "backendRefs": [{"name": name, "port": HTTP_PORT, "weight": weight} for name, weight in backends]
    }
    if mirror is not None:
        rule["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": track_service_name(component_name, CANARY), "port": HTTP_PORT},
                    "percent": mirror,
                },
            }
        ]
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {
            "parentRefs": [
                {
                    "group": GATEWAY_API,
                    "kind": "Gateway",
                    "namespace": gateway.namespace,
                    "name": gateway.name,
                }
            ],
            "hostnames": [host],
            "rules": [rule],
        },
    }


def _virtual_service(
    metadata: dict[str, Any],
    host: str,
    config: OperatorConfig,
    component_name: str,
    backends: list[tuple[str, int]],
    mirror: int | None,
) -> dict[str, Any]:
    namespace = metadata["namespace"]

    def destination(name: str) -> dict[str, Any]:
        return {"host": f"{name}.{namespace}.svc.cluster.local", "port": {"number": HTTP_PORT}}

    route: dict[str, Any] = {
        "route": [{"destination": destination(name), "weight": weight} for name, weight in backends]
    }
    if mirror is not None:
        route["mirror"] = destination(track_service_name(component_name, CANARY))
        route["mirrorPercentage"] = {"value": float(mirror)}
    gateway = config.traffic.gateway
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {"hosts": [host], "gateways": [f"{gateway.namespace}/{gateway.name}"], "http": [route]},
    }


def plan_traffic(
    backend: Backend,
    config: OperatorConfig,
    route_metadata: dict[str, Any],
    component_name: str,
    selector: dict[str, str],
    ports: list[dict[str, Any]],
    rollout: Rollout,
    mirror: int | None,
    scales_to_zero: bool = False,
) -> list[dict[str, Any]]:
    """The route of the entry component `component_name` and a Service per track it weighs.

    `route_metadata` names the route (the InferenceService's name) and carries
    the labels and owner that every child has; the track Services reuse them.
    A component that `scales_to_zero` is routed through its own Service.
    """
    if backend == "service":
        return []
    namespace = route_metadata["namespace"]
    host = ingress_host(route_metadata["name"], namespace, config.ingress.domain)
    build = _http_route if backend == "gateway" else _virtual_service
    backends = _backends(component_name, rollout, scales_to_zero)
    mirrored = mirror if _mirrored(rollout, mirror) and not scales_to_zero else None
    objects = [build(route_metadata, host, config, component_name, backends, mirrored)]
    if scales_to_zero:
        return objects
    for track, _ in _weights(rollout):
        metadata = child_metadata(
            track_service_name(component_name, track),
            namespace,
            route_metadata["labels"],
            route_metadata["ownerReferences"][0],
        )
        objects.append(build_service(metadata, {**selector, LABEL_TRACK: track}, ports))
    return objects
