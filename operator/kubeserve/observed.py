"""What the operator has seen of the cluster, kept current by kopf's watches.

Planning and status read from here instead of calling the API server, so a
reconcile costs no reads; only writes go out. Objects are indexed by namespace
and by the service label, so a reconcile touches its own children only (never
a scan of every object of a kind), and bodies are kept without what no reader
needs (managed fields, a pod's spec), which is most of their size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kubeserve.planning.naming import LABEL_SERVICE

Body = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

UNREAD_FIELDS = {"Pod": frozenset({"spec"})}
"""Top-level fields no reader of the view uses, by kind (a pod is judged by its labels and status)."""


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def _slim(kind: str, body: Mapping[str, Any]) -> Body:
    """A new top-level dict without managed fields or unread parts; nested values are shared, not copied.

    Watch events are fresh objects that nobody mutates, so sharing them is safe
    and a deep copy would only double what the view holds.
    """
    unread = UNREAD_FIELDS.get(kind, frozenset())
    slim = {key: value for key, value in body.items() if key not in unread}
    slim["metadata"] = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    return slim


def _older(body: Mapping[str, Any], kept: Mapping[str, Any] | None) -> bool:
    """Whether `body` is an older version of the `kept` object (same uid, lower resourceVersion).

    resourceVersions are opaque by contract, but the API server hands out etcd
    revisions; anything else that is not a number is never judged older.
    """
    if kept is None or body["metadata"].get("uid") != kept["metadata"].get("uid"):
        return False
    new, old = body["metadata"].get("resourceVersion", ""), kept["metadata"].get("resourceVersion", "")
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def _service_of(body: Mapping[str, Any]) -> str | None:
    service: str | None = (body["metadata"].get("labels") or {}).get(LABEL_SERVICE)
    return service


class ClusterView:
    """The latest body of each watched object by kind and namespace, and the children of each service."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Body]]] = defaultdict(lambda: defaultdict(dict))
        self._children: dict[tuple[str, str, str], dict[str, Body]] = defaultdict(dict)

    def record(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Apply one watch event, or the object a write returned; DELETED forgets the object.

        The operator records what its own writes return, so that a reconcile
        right after a write does not act on the state before it (and write the
        same status twice, or post the same Event twice). The watch event of
        that write, or an older one still in flight, must not undo it: a body
        older than the one kept is ignored.
        """
        namespace, name = key_of(body)
        in_namespace = self._objects[kind][namespace]
        if event_type != "DELETED" and _older(body, in_namespace.get(name)):
            return
        previous = in_namespace.pop(name, None)
        if previous is not None:
            self._unindex(kind, namespace, name, previous)
        if event_type == "DELETED":
            if not in_namespace:
                del self._objects[kind][namespace]
            return
        slim = _slim(kind, body)
        in_namespace[name] = slim
        service = _service_of(slim)
        if service is not None:
            self._children[(kind, namespace, service)][name] = slim

    def _unindex(self, kind: str, namespace: str, name: str, body: Body) -> None:
        service = _service_of(body)
        if service is None:
            return
        siblings = self._children[(kind, namespace, service)]
        siblings.pop(name, None)
        if not siblings:
            del self._children[(kind, namespace, service)]

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        return self._objects[kind].get(namespace, {}).get(name)

    def all(self, kind: str, namespace: str | None = None) -> list[Body]:
        by_namespace = self._objects[kind]
        if namespace is not None:
            return list(by_namespace.get(namespace, {}).values())
        return [body for objects in by_namespace.values() for body in objects.values()]

    def owned_by(self, kind: str, namespace: str, service: str, uid: str | None) -> list[Body]:
        """Objects of `kind` labelled for `service`; with `uid`, only those it owns (never a stranger's)."""
        labelled = self._children.get((kind, namespace, service), {}).values()
        if uid is None:
            return list(labelled)
        return [
            body
            for body in labelled
            if any(o.get("uid") == uid for o in body["metadata"].get("ownerReferences") or [])
        ]
