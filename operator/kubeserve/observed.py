"""What the operator has seen of the cluster, kept current by kopf's watches.

Planning and status read from here instead of calling the API server, so a
reconcile costs no reads; only writes go out.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kubeserve.planning.naming import LABEL_SERVICE

Body = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


class ClusterView:
    """The latest body of each watched object, by kind, and the children of each service."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Body]] = defaultdict(dict)

    def record(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Apply one watch event; DELETED forgets the object."""
        objects = self._objects[kind]
        if event_type == "DELETED":
            objects.pop(key_of(body), None)
        else:
            objects[key_of(body)] = copy.deepcopy(dict(body))

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str, namespace: str | None = None) -> list[Body]:
        return [body for (ns, _), body in self._objects[kind].items() if namespace is None or ns == namespace]

    def owned_by(self, kind: str, namespace: str, service: str, uid: str | None) -> list[Body]:
        """Objects of `kind` labelled for `service`; with `uid`, only those it owns (never a stranger's)."""
        found = []
        for body in self.all(kind, namespace):
            metadata = body["metadata"]
            if (metadata.get("labels") or {}).get(LABEL_SERVICE) != service:
                continue
            owners = metadata.get("ownerReferences") or []
            if uid is None or any(o.get("uid") == uid for o in owners):
                found.append(body)
        return found
