"""Server-side apply of a plan's objects, and pruning of what the service owns but no longer wants.

Each applied object carries a hash of what was applied. A reconcile whose
desired object hashes the same as the observed one's annotation sends nothing,
so a quiet cluster sees no writes at all from the operator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeserve.apply.client import KubeApi
from kubeserve.apply.resources import CHILD_KINDS
from kubeserve.planning.naming import GROUP_PREFIX

HASH_ANNOTATION = f"{GROUP_PREFIX}/applied-hash"

ObjectKey = tuple[str, str]
"""(kind, name) of a child within its service's namespace."""


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def key_of(obj: dict[str, Any]) -> ObjectKey:
    return obj["kind"], obj["metadata"]["name"]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` annotated with the hash of its own content."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    metadata = obj["metadata"]
    annotations = {**metadata.get("annotations", {}), HASH_ANNOTATION: digest}
    return {**obj, "metadata": {**metadata, "annotations": annotations}}


def applied_hash(obj: dict[str, Any]) -> str | None:
    value: str | None = (obj.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return value


async def sync_children(
    api: KubeApi,
    desired: Iterable[dict[str, Any]],
    observed: Iterable[dict[str, Any]],
    keep: frozenset[ObjectKey] = frozenset(),
) -> SyncResult:
    """Apply what changed, delete owned children that are neither desired nor to be kept."""
    current = {key_of(obj): obj for obj in observed}
    result = SyncResult()
    writes: list[Awaitable[object]] = []
    wanted: set[ObjectKey] = set(keep)
    for obj in desired:
        key = key_of(obj)
        wanted.add(key)
        target = stamped(obj)
        if key in current and applied_hash(current[key]) == applied_hash(target):
            continue
        result.applied.append("/".join(key))
        writes.append(api.apply(CHILD_KINDS[key[0]], target))
    for key, obj in current.items():
        if key not in wanted:
            result.pruned.append("/".join(key))
            meta = obj["metadata"]
            writes.append(api.delete(CHILD_KINDS[key[0]], meta["namespace"], meta["name"], meta.get("uid")))
    await asyncio.gather(*writes)
    return result
