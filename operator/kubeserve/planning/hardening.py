"""Pod hardening: every container the operator writes starts from the Pod Security Standards'
`restricted` level, and what loosens it is named.

A container's `securityContext` is laid over `RESTRICTED` field by field (a runtime's over the
defaults, then the service's over the runtime's), so a spec that sets `runAsUser` keeps the dropped
capabilities and the seccomp profile. Whoever may write an InferenceService can already write a
Deployment in its namespace, so loosening is theirs to ask for: it is named on the service (and, where
the operator's configuration says so, refused), and Pod Security admission has the last word.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

RESTRICTED: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""What the `restricted` level asks of each container."""

ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
"""The one capability the `restricted` level lets a container add."""

_ESCALATING_CAPABILITIES = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})
"""Added, they imply privilege escalation: the API server refuses them beside the default's `false`."""


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid on `base` field by field: mappings merge, anything else (lists too) replaces."""
    result = dict(base)
    for key, value in over.items():
        below = result.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = merged(below, value)
        else:
            result[key] = value
    return result


def layered(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """One securityContext laid over another. A privileged layer (or one that adds SYS_ADMIN) keeps no
    `allowPrivilegeEscalation: false` from below, which the API server would refuse beside it; its own
    setting, if any, stays and meets the API server's verdict."""
    context = merged(base, over)
    added = set((over.get("capabilities") or {}).get("add") or [])
    escalates = over.get("privileged") is True or bool(added & _ESCALATING_CAPABILITIES)
    if escalates and "allowPrivilegeEscalation" not in over:
        context.pop("allowPrivilegeEscalation", None)
    return context


def harden(container: dict[str, Any]) -> dict[str, Any]:
    """The container with its securityContext laid over `RESTRICTED`."""
    return {**container, "securityContext": layered(RESTRICTED, container.get("securityContext") or {})}


def _loosened(context: Mapping[str, Any], where: str) -> Iterator[str]:
    if context.get("privileged") is True:
        yield f"{where}.privileged is true"
    if context.get("allowPrivilegeEscalation") is True:
        yield f"{where}.allowPrivilegeEscalation is true"
    if context.get("runAsNonRoot") is False:
        yield f"{where}.runAsNonRoot is false"
    if context.get("runAsUser") == 0:
        yield f"{where}.runAsUser is 0 (root)"
    added = set((context.get("capabilities") or {}).get("add") or []) - ALLOWED_CAPABILITIES
    if added:
        yield f"{where}.capabilities.add has {', '.join(sorted(added))}"
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield f"{where}.seccompProfile is Unconfined"


def loosening(pod_spec: Mapping[str, Any]) -> list[str]:
    """What in a pod spec loosens the `restricted` level, each named by where it is."""
    found = list(_loosened(pod_spec.get("securityContext") or {}, "securityContext"))
    for kind in ("initContainers", "containers"):
        for container in pod_spec.get(kind) or []:
            where = f"{kind}[{container.get('name')}].securityContext"
            found += _loosened(container.get("securityContext") or {}, where)
    found += [
        f"volumes[{volume.get('name')}] is a hostPath"
        for volume in pod_spec.get("volumes") or []
        if "hostPath" in volume
    ]
    return found
