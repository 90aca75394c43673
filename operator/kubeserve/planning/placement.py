"""Where a component's pods may run: accelerator classes, GPU taints, and CPU pods kept off GPU nodes.

A component names an accelerator class (`model.accelerator`), or only requests
an accelerator resource such as `nvidia.com/gpu`. A named class gives its node
selector and tolerations, and adds one device of its resource when the
component requested none. A bare resource request gets the tolerations of the
classes that use that resource (so it can land on any of their nodes) and no
product selector. A component that requests no accelerator gets nothing, so it
never tolerates a GPU taint and never occupies a GPU node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeserve.api.common import ResourceRequirements
from kubeserve.config import OperatorConfig


class UnknownAcceleratorClass(ValueError):
    """The component names a class the operator's configuration does not define."""


@dataclass(frozen=True)
class Placement:
    accelerator_class: str | None = None
    accelerator_resources: tuple[str, ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    added_limits: dict[str, str] = field(default_factory=dict)
    """Accelerator limits added to the serving container because a class was named without one."""

    @property
    def uses_accelerator(self) -> bool:
        return bool(self.accelerator_resources)


def requested_resources(resources: Iterable[ResourceRequirements | None]) -> set[str]:
    """Resource names with a non-zero request or limit in any of the containers."""
    names: set[str] = set()
    for requirement in resources:
        if requirement is None:
            continue
        for amounts in (requirement.limits or {}, requirement.requests or {}):
            names.update(name for name, amount in amounts.items() if str(amount) not in ("0", ""))
    return names


def _unique(tolerations: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    seen: list[dict[str, Any]] = []
    for toleration in tolerations:
        if toleration not in seen:
            seen.append(toleration)
    return tuple(seen)


def plan_placement(
    accelerator_class: str | None, resources: Iterable[ResourceRequirements | None], config: OperatorConfig
) -> Placement:
    requested = requested_resources(resources)
    if accelerator_class is not None:
        chosen = config.accelerator_classes.get(accelerator_class)
        if chosen is None:
            known = ", ".join(sorted(config.accelerator_classes)) or "none"
            raise UnknownAcceleratorClass(
                f"model.accelerator {accelerator_class!r} is not an accelerator class of this operator "
                f"(configured: {known})"
            )
        added = {} if chosen.resource_name in requested else {chosen.resource_name: "1"}
        return Placement(
            accelerator_class=accelerator_class,
            accelerator_resources=tuple(sorted(requested & config.accelerator_resources() | set(added))),
            node_selector=dict(chosen.node_selector),
            tolerations=_unique(t.to_dict() for t in chosen.tolerations),
            added_limits=added,
        )
    accelerators = sorted(requested & config.accelerator_resources())
    if not accelerators:
        return Placement()
    classes = [c for c in config.accelerator_classes.values() if c.resource_name in accelerators]
    return Placement(
        accelerator_resources=tuple(accelerators),
        tolerations=_unique(t.to_dict() for c in classes for t in c.tolerations),
    )
