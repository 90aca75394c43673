"""What the operator has seen of the cluster, kept current by its watches.

Planning and status read from here instead of calling the API server, so a
reconcile costs no reads; only writes go out. Objects are indexed by namespace
and by the service label, so a reconcile touches its own children only (never
a scan of every object of a kind).

Each body is kept as compact JSON text, without what no reader needs (managed
fields, a pod's spec and most of its status), compressed, and decoded when a
reconcile asks for it. Parsed JSON costs several times its text in Python
objects (a Deployment is about 24 KB of dicts and strings, 3.8 KB of text), and
the view holds every child of every service for the operator's lifetime: kept
parsed, a thousand services' children alone would be most of the operator's
memory. A reconcile decodes only its own few objects, tens of microseconds
each, and gets fresh dicts it may keep or change without touching the view.

Objects of one kind differ in little but names, uids and times, so each is
compressed (zlib) against a dictionary: the first body of its kind the view
kept. Measured on a thousand services' objects, a service's five (itself, its
Deployment, Service, EndpointSlice and pod) are 8.2 KB of text, 3.6 KB
compressed alone and 1.0 KB against the dictionary, for about 30 us to pack and
5 us to unpack each (decoding the JSON takes 40).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.apply import decoding
from kubeserve.apply.resources import CHILD_KINDS, INFERENCE_SERVICE
from kubeserve.planning.naming import LABEL_SERVICE

Body = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

OWNED_KINDS = frozenset({*CHILD_KINDS, "Pod"})
"""Kinds Kubeserve creates (or whose pods it reads): no reader looks at annotations others set on them."""
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POD_STATUS_READ = ("phase", "conditions")
"""What status reads of a pod: its phase and conditions (scheduling, readiness and their messages),
and the containers that fail (`failing_containers`)."""
CONTAINER_STATUSES = ("initContainerStatuses", "containerStatuses")
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
"""Waiting reasons of a container on its way up, not a failure."""
DICTIONARY_BYTES = 32 * 1024
"""zlib looks back this far at most: more of a dictionary would never be used."""
PACKING_LEVEL = 1
"""Fastest: against a dictionary of its own kind, a body compresses nearly as well as at any level."""


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def slim(kind: str, body: Mapping[str, Any]) -> Body:
    """A shallow copy without what no reader uses; nested values are shared with `body`, not copied.

    Managed fields are the API server's bookkeeping (often the biggest part of
    a small object). A pod is read for its labels, phase and conditions only;
    its spec and container statuses are most of its size. A child's
    last-applied annotation (a kubectl apply by hand) is a copy of its spec.
    """
    out = dict(body)
    metadata = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    annotations = metadata.get("annotations")
    if kind in OWNED_KINDS and annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    out["metadata"] = metadata
    if kind == "Pod":
        out.pop("spec", None)
        status = body.get("status") or {}
        out["status"] = {key: status[key] for key in POD_STATUS_READ if key in status}
        for key in CONTAINER_STATUSES:
            failing = failing_containers(status.get(key) or [])
            if failing:
                out["status"][key] = failing
    return out


def failing_containers(statuses: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Only the containers that wait for a reason other than starting, or that ended in failure, with
    the failed run's end: the rest of a healthy pod's statuses is never read."""
    failing = []
    for container in statuses:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        ended = state.get("terminated") or {}
        stuck = waiting.get("reason") and waiting["reason"] not in STARTING
        if stuck or ended.get("exitCode", 0) != 0:
            last = ended or (container.get("lastState") or {}).get("terminated") or {}
            failing.append(
                {
                    "name": container.get("name", ""),
                    "state": {"waiting": waiting} if waiting else {},
                    "lastState": {"terminated": last} if last else {},
                }
            )
    return failing


def _settled(kind: str, body: Mapping[str, Any]) -> bool:
    """An InferenceService Ready=True for its current spec: after a restart, the others are re-examined
    first, since someone waits for their verdict."""
    if kind != INFERENCE_SERVICE.kind:
        return False
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _version(value: str) -> int | None:
    """A resourceVersion as a number: opaque by contract, but the API server hands out etcd revisions."""
    return int(value) if value.isdigit() else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One object as kept: what indexing and ordering need, and its body as compressed JSON text."""

    uid: str | None
    version: str
    service: str | None
    owners: tuple[str, ...]
    settled: bool
    packed: bytes
    dictionary: bytes
    """What `packed` was compressed against: shared by the entries of a kind, not a copy each."""

    @classmethod
    def of(cls, kind: str, body: Mapping[str, Any], dictionaries: dict[str, bytes]) -> Entry:
        """`dictionaries` (by kind) gains this body's text if it is the first of its kind."""
        metadata = body["metadata"]
        text = decoding.dumps(slim(kind, body)).encode()
        dictionary = dictionaries.setdefault(kind, text[-DICTIONARY_BYTES:])
        packer = zlib.compressobj(PACKING_LEVEL, zdict=dictionary)
        return cls(
            metadata.get("uid"),
            metadata.get("resourceVersion", ""),
            (metadata.get("labels") or {}).get(LABEL_SERVICE),
            tuple(o.get("uid", "") for o in metadata.get("ownerReferences") or []),
            _settled(kind, body),
            packer.compress(text) + packer.flush(),
            dictionary,
        )

    def body(self) -> Body:
        decoded: Body = decoding.loads(zlib.decompressobj(zdict=self.dictionary).decompress(self.packed))
        return decoded

    def newer_than(self, uid: str | None, version: str) -> bool:
        """Whether this is a later version of the object (same uid) than `version`; unknown is not."""
        if uid is None or uid != self.uid:
            return False
        new, old = _version(version), _version(self.version)
        return new is not None and old is not None and old > new


class ClusterView:
    """The latest body of each watched object by kind and namespace, and the children of each service."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Entry]]] = defaultdict(lambda: defaultdict(dict))
        self._children: dict[tuple[str, str, str], dict[str, Entry]] = defaultdict(dict)
        self._dictionaries: dict[str, bytes] = {}

    def record(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Apply one watch event, or the object a write returned; DELETED forgets the object.

        Returns whether the view changed: a body the view already holds (the
        same resourceVersion, as when the watch brings back what a write
        returned and was recorded) changes nothing, and nobody needs to act.

        The operator records what its own writes return, so that a reconcile
        right after a write does not act on the state before it (and write the
        same status twice, or post the same Event twice). The watch event of
        that write, or an older one still in flight, must not undo it: a body
        older than the one kept is ignored.
        """
        namespace, name = key_of(body)
        metadata = body["metadata"]
        in_namespace = self._objects[kind][namespace]
        kept = in_namespace.get(name)
        if event_type != "DELETED" and kept is not None:
            version = metadata.get("resourceVersion", "")
            if kept.newer_than(metadata.get("uid"), version) or (
                kept.uid == metadata.get("uid") and kept.version == version and version
            ):
                return False
        if kept is not None:
            del in_namespace[name]
            self._unindex(kind, namespace, name, kept)
        if event_type == "DELETED":
            if not in_namespace:
                del self._objects[kind][namespace]
            return kept is not None
        entry = Entry.of(kind, body, self._dictionaries)
        in_namespace[name] = entry
        if entry.service is not None:
            self._children[(kind, namespace, entry.service)][name] = entry
        return True

    def _unindex(self, kind: str, namespace: str, name: str, entry: Entry) -> None:
        if entry.service is None:
            return
        siblings = self._children[(kind, namespace, entry.service)]
        siblings.pop(name, None)
        if not siblings:
            del self._children[(kind, namespace, entry.service)]

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        entry = self._objects[kind].get(namespace, {}).get(name)
        return None if entry is None else entry.body()

    def keys(self, kind: str, namespace: str | None = None) -> list[Key]:
        """(namespace, name) of every object of `kind` (in `namespace`), without decoding a body."""
        by_namespace = self._objects[kind]
        spaces = [namespace] if namespace is not None else list(by_namespace)
        return [(space, name) for space in spaces for name in by_namespace.get(space, {})]

    def unsettled_first(self, kind: str, namespace: str | None = None) -> list[Key]:
        """`keys`, those of objects not yet Ready for their current spec first."""
        by_namespace = self._objects[kind]
        return sorted(self.keys(kind, namespace), key=lambda key: by_namespace[key[0]][key[1]].settled)

    def all(self, kind: str, namespace: str | None = None) -> list[Body]:
        by_namespace = self._objects[kind]
        if namespace is not None:
            return [entry.body() for entry in by_namespace.get(namespace, {}).values()]
        return [entry.body() for objects in by_namespace.values() for entry in objects.values()]

    def owned_by(self, kind: str, namespace: str, service: str, uid: str | None) -> list[Body]:
        """Objects of `kind` labelled for `service`; with `uid`, only those it owns (never a stranger's)."""
        labelled = self._children.get((kind, namespace, service), {}).values()
        return [entry.body() for entry in labelled if uid is None or uid in entry.owners]
