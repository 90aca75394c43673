"""Server-side apply of a plan's objects, and pruning of what the service owns but no longer wants.

An object is applied only when the observed one no longer conforms to it:
every value Kubeserve sets must still be there. Each applied object carries a
hash of what was applied, and the hash is one of those values, so a change of
plan (even a removed field) fails the check; so does a hand edit of an image or
a replica count, which leaves the hash alone. Fields someone else added are
theirs under server-side apply and are left alone, except entries of a list
Kubeserve owns whole (`OWNED_LISTS`: a Service's ports). The check reads only the
watched object, so it needs no memory across reconciles or restarts, and a
quiet cluster sees no writes at all from the operator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException
from typing import Any

from kubeserve.apply.client import KubeApi
from kubeserve.apply.resources import CHILD_KINDS
from kubeserve.cache.observed import ClusterView
from kubeserve.planning.naming import GROUP_PREFIX

HASH_ANNOTATION = f"{GROUP_PREFIX}/applied-hash"
OWNED_LISTS = {"Service": ("spec", "ports")}
"""Lists Kubeserve owns whole: an entry someone else added or re-keyed (a Service port edited from 80
to 9999 keeps its name) would sit beside Kubeserve's under server-side apply, and the API server refuses
a Service with two ports of one name. Such a list is replaced whole before the apply."""

ObjectKey = tuple[str, str]
"""(kind, name) of a child within its service's namespace."""

logger = logging.getLogger(__name__)

_QUANTITY = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_SCALE = {
    **{
        suffix: Decimal(1024) ** power
        for power, suffix in enumerate(("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    },
    **{
        suffix: Decimal(10) ** power
        for suffix, power in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
}


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def _child_key(obj: dict[str, Any]) -> ObjectKey:
    return obj["kind"], obj["metadata"]["name"]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` annotated with the hash of its own content."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    metadata = obj["metadata"]
    annotations = {**metadata.get("annotations", {}), HASH_ANNOTATION: digest}
    return {**obj, "metadata": {**metadata, "annotations": annotations}}


def _applied_hash(obj: dict[str, Any]) -> str | None:
    value: str | None = (obj["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
    return value


def _quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity's value: the API server stores "0.5" as "500m" and "1024Mi" as "1Gi"."""
    match = _QUANTITY.fullmatch(str(value)) if isinstance(value, str | int) else None
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE":
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SCALE[suffix or ""]
    except DecimalException:  # a hex digest such as "4e16049127" reads as 4 x 10^16049127: no quantity
        return None


def conforms(desired: Any, observed: Any) -> bool:
    """Whether `observed` still holds every value of `desired`.

    A value the API server leaves out when empty (false, 0, "", {}, []) may be
    missing; an item of a list of objects may sit anywhere in the observed list
    (server-side apply merges them by key, and others may add their own); a
    list of plain values must match exactly, as it is replaced whole.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return False
        return all(
            conforms(value, observed[key]) if key in observed else not value for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(observed, list):
            return False
        if all(isinstance(item, dict) for item in desired):
            return all(any(conforms(item, candidate) for candidate in observed) for item in desired)
        return len(desired) == len(observed) and all(map(conforms, desired, observed))
    if desired == observed:
        return True
    quantity = _quantity(desired)
    return quantity is not None and quantity == _quantity(observed)


def _owned_list(obj: dict[str, Any]) -> list[Any] | None:
    path = OWNED_LISTS.get(obj["kind"])
    value: Any = obj
    for key in path or ():
        value = value.get(key) if isinstance(value, dict) else None
    return value if path and isinstance(value, list) else None


def has_foreign_entries(target: dict[str, Any], found: dict[str, Any]) -> bool:
    """Whether an owned list of `found` holds more, or other, entries than `target`'s."""
    wanted, seen = _owned_list(target), _owned_list(found)
    if wanted is None:
        return False
    return seen is None or len(seen) != len(wanted) or not conforms(wanted, seen)


async def _applied(
    api: KubeApi, view: ClusterView, target: dict[str, Any], replace_owned_list: bool = False
) -> None:
    resource = CHILD_KINDS[target["kind"]]
    if replace_owned_list:
        *parents, leaf = OWNED_LISTS[target["kind"]]
        patch: dict[str, Any] = {leaf: _owned_list(target)}
        for key in reversed(parents):
            patch = {key: patch}
        await api.merge_patch(resource, {"metadata": target["metadata"], **patch})
    view.record(target["kind"], None, await api.apply(resource, target))


async def _pruned(api: KubeApi, view: ClusterView, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    await api.delete(CHILD_KINDS[obj["kind"]], meta["namespace"], meta["name"], meta.get("uid"))
    view.record(obj["kind"], "DELETED", obj)


async def sync_children(
    api: KubeApi,
    view: ClusterView,
    desired: Iterable[dict[str, Any]],
    observed: Iterable[dict[str, Any]],
) -> SyncResult:
    """Apply what is missing or no longer conforms, delete owned children no longer desired.

    What the writes return goes into the view at once, so the next reconcile,
    which may run before the watch brings the same news, does not write again.
    """
    current = {_child_key(obj): obj for obj in observed}
    result = SyncResult()
    writes: list[Awaitable[object]] = []
    wanted: set[ObjectKey] = set()
    for obj in desired:
        key = _child_key(obj)
        wanted.add(key)
        target = stamped(obj)
        found = current.get(key)
        foreign = found is not None and has_foreign_entries(target, found)
        if found is not None:
            if conforms(target, found) and not foreign:
                continue
            if _applied_hash(found) == _applied_hash(target):
                logger.info("restoring %s %s: changed outside Kubeserve since it was applied", *key)
        result.applied.append("/".join(key))
        writes.append(_applied(api, view, target, foreign))
    for key, obj in current.items():
        if key not in wanted:
            result.pruned.append("/".join(key))
            writes.append(_pruned(api, view, obj))
    await asyncio.gather(*writes)
    return result
