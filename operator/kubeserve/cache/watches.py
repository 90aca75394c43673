"""The watches that keep the view current and mark the InferenceServices each change concerns.

The operator lists and watches what it reads (InferenceServices, runtimes,
ServiceAccounts, and the children with their pods) itself, on its own client,
instead of through kopf. A restart has to be silent: the first reconcile must
see every child, pod and runtime, or it finds "nothing there" and re-creates
it. kopf can hold handlers back until every indexed resource is listed, but it
does so by parking one worker per listed object, each holding its full body
(managed fields, pod specs) until the last list is done: more than half of the
operator's peak memory when it restarted among 1200 services (by tracemalloc,
~100 MiB of parsed bodies and ~40 MiB of kopf's per-object state). Here each
page of a list is slimmed into the view as it arrives, one page at a time, and
nothing is reconciled until every initial list is in (`Reconciler.synced`,
also what /readyz reports); then every service is reconciled once.

Each kind is followed by the one list-and-watch loop (`list_watch.py`): a
watch resumes from the last resourceVersion it saw (bookmarks keep that
recent), and when the server no longer has it (410 Gone) the kind is listed
again: objects missing from the new list were deleted meanwhile, and are
forgotten as if their DELETED events had come.

Children (and their pods) are listed and watched through a server-side label
selector, so in a big cluster the operator never receives, parses or keeps
anybody else's pods. Routes are followed the same way when their CRDs are
installed, and so are KEDA's ScaledObjects; kopf's watch of those CRDs
(`handlers/traffic.py`) tells the reconciler when one comes or goes. EndpointSlices
are followed for scale to zero (`planning/scale_to_zero.py`): those of the
children's Services (Kubernetes copies a Service's labels onto its slices),
and the activator Service's, in its namespace only, while it is turned on.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi
from kubeserve.apply.resources import (
    AUTOSCALER,
    CLUSTER_SERVING_RUNTIME,
    DEPLOYMENT,
    ENDPOINT_SLICE,
    HTTP_ROUTE,
    INFERENCE_SERVICE,
    SCALED_OBJECT,
    SERVICE,
    SERVING_RUNTIME,
    VIRTUAL_SERVICE,
    Resource,
)
from kubeserve.cache.list_watch import MIN_WATCH_SECONDS, ListWatch
from kubeserve.missing_crds import MissingCrds
from kubeserve.planning.naming import LABEL_SERVICE
from kubeserve.planning.scale_to_zero import MANAGER, SLICE_MANAGER, SLICE_SERVICE
from kubeserve.reconciler import Reconciler

Enqueue = Callable[[Reconciler, Mapping[str, Any]], None]

MISSING_CRD_SECONDS = 5.0
FORBIDDEN_SECONDS = 30.0
"""How often slices the operator may not read (the activator's, outside its Roles) are asked for again."""
"""How often one of Kubeserve's kinds is asked for while its CRD is not applied (said once, not each time)."""
logger = logging.getLogger(__name__)

SERVICE_ACCOUNT = Resource("v1", "ServiceAccount", "serviceaccounts")
POD = Resource("v1", "Pod", "pods")


def _service(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    metadata = body["metadata"]
    reconciler.enqueue(metadata["namespace"], metadata["name"], metadata.get("generation"))


def _namespace(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    """Runtimes and ServiceAccounts feed the plans of every service in their namespace."""
    reconciler.enqueue_all(body["metadata"]["namespace"])


def _everywhere(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    reconciler.enqueue_all()


def _owner(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    metadata = body["metadata"]
    service = (metadata.get("labels") or {}).get(LABEL_SERVICE)
    if service:
        reconciler.enqueue(metadata["namespace"], service)


def _idle_services(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    """The activator's addresses changed: re-plan the services whose routing may point at it."""
    for routing in reconciler.view.all(ENDPOINT_SLICE.kind):
        labels = routing["metadata"].get("labels") or {}
        if labels.get(SLICE_MANAGER) == MANAGER and LABEL_SERVICE in labels:
            reconciler.enqueue(routing["metadata"]["namespace"], labels[LABEL_SERVICE])


@dataclass(frozen=True)
class Watched:
    resource: Resource
    enqueue: Enqueue
    child: bool = False
    """Children and pods: only those with the service label, selected by the server."""
    labels: tuple[str, ...] = ()
    """More of the label selector (`key` or `key=value`), for a kind followed only in part."""
    may_be_forbidden: bool = False
    """Refused by RBAC, it is followed as empty (and asked again), not waited for: the activator's slices,
    in a namespace the operator's Roles may not cover, must not keep every service from reconciling."""
    optional: bool = False
    """A CRD that may be missing (routes, KEDA's): then there is nothing to list, and it is asked again
    later."""


WATCHED = (
    Watched(INFERENCE_SERVICE, _service),
    Watched(SERVING_RUNTIME, _namespace),
    Watched(CLUSTER_SERVING_RUNTIME, _everywhere),
    Watched(SERVICE_ACCOUNT, _namespace),
    Watched(DEPLOYMENT, _owner, child=True),
    Watched(SERVICE, _owner, child=True),
    Watched(ENDPOINT_SLICE, _owner, child=True),
    Watched(AUTOSCALER, _owner, child=True),
    Watched(POD, _owner, child=True),
    Watched(HTTP_ROUTE, _owner, child=True, optional=True),
    Watched(VIRTUAL_SERVICE, _owner, child=True, optional=True),
    Watched(SCALED_OBJECT, _owner, child=True, optional=True),
)
"""What the operator reads: its API, what plans read, what it creates, and the pods its Deployments create."""


def activator_slices(name: str) -> Watched:
    """The EndpointSlices of the activator's Service `name`, followed in its namespace only."""
    return Watched(ENDPOINT_SLICE, _idle_services, labels=(f"{SLICE_SERVICE}={name}",), may_be_forbidden=True)


def _selected(labels: Mapping[str, str], selector: tuple[str, ...]) -> bool:
    """Whether `labels` match a selector of `key` and `key=value` terms, as the server would select."""
    return all(
        labels.get(key) == value if sep else key in labels
        for key, sep, value in (term.partition("=") for term in selector)
    )


@dataclass(frozen=True)
class Scope:
    """The namespaces followed, as `kubeserve run --namespace` gives them (kopf's syntax for kopf's watches).

    Each pattern is a comma-separated list of globs, `!` excluding; a first
    exclusion implies a leading `*`; a later inclusion only re-admits what an
    exclusion took out. Plain names are listed and watched one by one; any
    pattern means one cluster-wide watch whose events are filtered here.
    """

    patterns: tuple[str, ...] = ()

    def namespaces(self) -> list[str | None]:
        """Where to list and watch namespaced kinds; None is every namespace."""
        if self.patterns and not any(set(p) & set("*?!,") for p in self.patterns):
            return list(self.patterns)
        return [None]

    def wanted(self, namespace: str | None) -> bool:
        return not namespace or not self.patterns or any(_matches(namespace, p) for p in self.patterns)


def _matches(namespace: str, pattern: str) -> bool:
    globs = [glob.strip() for glob in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    matches = first = fnmatch.fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matches = matches and not fnmatch.fnmatchcase(namespace, glob[1:])
        else:
            matches = matches or (first and fnmatch.fnmatchcase(namespace, glob))
    return matches


class Follower(ListWatch):
    """One watched kind in one namespace (or all), recorded into the view; marks the services concerned."""

    def __init__(
        self,
        api: KubeApi,
        reconciler: Reconciler,
        watched: Watched,
        namespace: str | None,
        scope: Scope,
        listing: asyncio.Lock,
        missing: MissingCrds | None = None,
    ) -> None:
        self.selector_terms = ((LABEL_SERVICE,) if watched.child else ()) + watched.labels
        super().__init__(
            api,
            watched.resource,
            namespace,
            {"labelSelector": ",".join(self.selector_terms)} if self.selector_terms else {},
            listing,
        )
        self.reconciler = reconciler
        self.watched = watched
        self.scope = scope
        self.missing = missing if missing is not None else MissingCrds()
        """Shared by every follower: Kubeserve's kinds found unserved, for one clear log line and /readyz."""

    async def received(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self.scope.wanted(body["metadata"].get("namespace")):
            self._record(event_type, body)

    def _record(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Record one object and mark the services it concerns; an object that cannot be is skipped.

        One object (a tenant's) must never stop a list or a watch, and with it
        every other service: a failure here is logged with its traceback, and
        the list or watch goes on with the next object.
        """
        resource = self.watched.resource
        try:
            if (
                self.reconciler.view.record(resource.kind, event_type, body)
                and self.reconciler.synced.is_set()
            ):
                self.watched.enqueue(self.reconciler, body)
        except Exception:
            metadata = body.get("metadata") or {}
            logger.exception(
                "%s %s/%s: skipped, it could not be recorded",
                resource.kind,
                metadata.get("namespace", ""),
                metadata.get("name", "?"),
            )

    def relisted(self, seen: set[tuple[str, str]]) -> None:
        """Objects in the view (in this follower's namespace) that a new list no longer has were deleted."""
        self.missing.found(self.watched.resource)
        self._forget(seen)

    def _forget(self, seen: set[tuple[str, str]]) -> None:
        """Only what this follower would have listed: another may follow other objects of its kind."""
        kind = self.watched.resource.kind
        for key in set(self.reconciler.view.keys(kind, self.namespace)) - seen:
            gone = self.reconciler.view.get(kind, *key)
            if (
                gone is not None
                and self.scope.wanted(key[0] or None)
                and _selected(gone["metadata"].get("labels") or {}, self.selector_terms)
            ):
                self._record("DELETED", gone)

    async def refused(self, error: ApiError) -> bool:
        """404: a CRD not applied. Kubeserve's own kinds are asked for again soon (and said missing
        once); a route's or KEDA's CRD may simply not be installed, which lists as nothing until kopf's
        CRD watch (`traffic.py`) says it is served. 403 on what `may_be_forbidden`: followed as empty."""
        if error.status == 403 and self.watched.may_be_forbidden:
            logger.error(
                "%s in %s are forbidden to the operator (%s): grant list and watch there; meanwhile idle "
                "services have no activator to route to",
                self.watched.resource.plural,
                self.namespace,
                error,
            )
            self._forget(set())
            self.listed.set()
            await asyncio.sleep(FORBIDDEN_SECONDS)
            return True
        if error.status != 404:
            return False
        if self.missing.owns(self.watched.resource):
            self.missing.lost(self.watched.resource)
            await asyncio.sleep(MISSING_CRD_SECONDS)
            return True
        if not self.watched.optional:
            return False
        self._forget(set())
        self.listed.set()
        await asyncio.sleep(MIN_WATCH_SECONDS)  # served, yet not found: discovery lags the CRD a moment
        await self.reconciler.optional_served[self.watched.resource].wait()
        return True


class ActivatorSlices:
    """The activator Service's slices, followed from where the configuration puts the activator while it
    turns scale to zero on: a configuration change moves or stops the follower, with no restart."""

    def __init__(self, api: KubeApi, reconciler: Reconciler, missing: MissingCrds) -> None:
        self._api = api
        self._reconciler = reconciler
        self._missing = missing
        self._listing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.follower: Follower | None = None

    def follow(self, activator: tuple[str, str] | None) -> None:
        """Follow the slices of the activator's Service (namespace, name), or none; the reconciler is
        told, and forgets the slices of the one it followed before."""
        before = self._reconciler.activator
        if activator == before and (activator is None or self._task is not None):
            return
        self.stop()
        if before is not None:
            where, name = before
            for piece in self._reconciler.view.all(ENDPOINT_SLICE.kind, where):
                if (piece["metadata"].get("labels") or {}).get(SLICE_SERVICE) == name:
                    self._reconciler.view.record(ENDPOINT_SLICE.kind, "DELETED", piece)
        self._reconciler.activator = activator
        if activator is not None:
            where, name = activator
            self.follower = Follower(
                self._api,
                self._reconciler,
                activator_slices(name),
                where,
                Scope(),
                self._listing,
                self._missing,
            )
            self._task = asyncio.create_task(self.follower.run(), name="watch the activator's endpointslices")
        logger.info("scale to zero: following the activator's Service %s", "/".join(activator or ("none",)))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task, self.follower = None, None


async def follow_all(
    api: KubeApi,
    reconciler: Reconciler,
    missing: MissingCrds,
    namespaces: tuple[str, ...] = (),
    activator: ActivatorSlices | None = None,
) -> None:
    """Keep the view current until cancelled; once every kind is listed, mark synced and reconcile all.

    Nothing reconciles before that, so a restart's first reconcile of a
    service sees its every child and pod, and writes nothing. Kubeserve's
    kinds whose CRDs are not applied go into `missing` until they are.
    `activator` follows the activator's slices, while scale to zero is on (on `api` too).
    """
    listing = asyncio.Lock()
    scope = Scope(namespaces)
    followers = [
        Follower(api, reconciler, watched, namespace, scope, listing, missing)
        for watched in WATCHED
        for namespace in (scope.namespaces() if watched.resource.namespaced else [None])
    ]
    tasks = [asyncio.create_task(f.run(), name=f"watch {f.watched.resource.plural}") for f in followers]
    try:
        for follower in followers:
            await follower.listed.wait()
        if activator is not None and activator.follower is not None:
            await activator.follower.listed.wait()
        logger.info("every watched kind is listed: reconciling every service")
        reconciler.synced.set()
        reconciler.enqueue_all()
        await asyncio.gather(*tasks)
    finally:
        if activator is not None:
            activator.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
