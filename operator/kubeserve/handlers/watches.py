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

A watch resumes from the last resourceVersion it saw (bookmarks keep that
recent), and when the server no longer has it (410 Gone) the kind is listed
again: objects missing from the new list were deleted meanwhile, and are
forgotten as if their DELETED events had come.

Children (and their pods) are listed and watched through a server-side label
selector, so in a big cluster the operator never receives, parses or keeps
anybody else's pods. Routes are followed the same way when their CRDs are
installed; kopf's watch of those CRDs (`traffic.py`) tells the reconciler when
one comes or goes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi, TransportError
from kubeserve.apply.resources import (
    AUTOSCALER,
    CLUSTER_SERVING_RUNTIME,
    DEPLOYMENT,
    HTTP_ROUTE,
    INFERENCE_SERVICE,
    SERVICE,
    SERVING_RUNTIME,
    VIRTUAL_SERVICE,
    Resource,
)
from kubeserve.missing_crds import MissingCrds
from kubeserve.planning.naming import LABEL_SERVICE
from kubeserve.reconciler import Reconciler

Enqueue = Callable[[Reconciler, Mapping[str, Any]], None]

PAGE_SIZE = 100
"""Objects per list page: one page of pods, parsed, is a few MiB until it is slimmed into the view."""
WATCH_SECONDS = 300
MIN_WATCH_SECONDS = 1.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
UNSERVED_SECONDS = 30.0
"""How often a missing route CRD is looked for (the reconciler learns of it at once, by kopf's CRD watch)."""
MISSING_CRD_SECONDS = 5.0
"""How often one of Kubeserve's kinds is asked for while its CRD is not applied (said once, not each time)."""
logger = logging.getLogger(__name__)

SERVICE_ACCOUNT = Resource("v1", "ServiceAccount", "serviceaccounts")
POD = Resource("v1", "Pod", "pods")


def _service(reconciler: Reconciler, body: Mapping[str, Any]) -> None:
    reconciler.enqueue(body["metadata"]["namespace"], body["metadata"]["name"])


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


@dataclass(frozen=True)
class Watched:
    resource: Resource
    enqueue: Enqueue
    child: bool = False
    """Children and pods: only those with the service label, selected by the server."""
    optional: bool = False
    """A CRD that may be missing (routes): then there is nothing to list, and it is asked again later."""


WATCHED = (
    Watched(INFERENCE_SERVICE, _service),
    Watched(SERVING_RUNTIME, _namespace),
    Watched(CLUSTER_SERVING_RUNTIME, _everywhere),
    Watched(SERVICE_ACCOUNT, _namespace),
    Watched(DEPLOYMENT, _owner, child=True),
    Watched(SERVICE, _owner, child=True),
    Watched(AUTOSCALER, _owner, child=True),
    Watched(POD, _owner, child=True),
    Watched(HTTP_ROUTE, _owner, child=True, optional=True),
    Watched(VIRTUAL_SERVICE, _owner, child=True, optional=True),
)
"""What the operator reads: its API, what plans read, what it creates, and the pods its Deployments create."""


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


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Follower:
    """List, then watch, one resource in one namespace (or all), into the view; re-list after a 410."""

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
        self.api = api
        self.reconciler = reconciler
        self.watched = watched
        self.namespace = namespace if watched.resource.namespaced else None
        self.scope = scope
        self.listing = listing
        """Shared by every follower: one page in memory at a time, however many kinds list at once."""
        self.missing = missing if missing is not None else MissingCrds()
        """Shared too: Kubeserve's kinds found unserved, for one clear log line and /readyz."""
        self.listed = asyncio.Event()
        self.selector = {"labelSelector": LABEL_SERVICE} if watched.child else {}

    def _changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
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

    async def run(self) -> None:
        """Follow until cancelled: whatever fails, this loop backs off and goes on.

        A dead follower would leave its kind unwatched (and, before the first
        list, the operator never ready) with nothing but a failed liveness
        probe to show for it; an unexpected error lists the kind afresh.
        """
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list()
                    self.missing.found(self.watched.resource)
                    self.listed.set()
                started = time.monotonic()
                version = await self._watch(version)
                failures = 0
                if time.monotonic() - started < MIN_WATCH_SECONDS:  # never a tight loop of empty watches
                    await asyncio.sleep(MIN_WATCH_SECONDS)
            except Gone:
                logger.info("%s: watch expired, listing again", self.watched.resource.plural)
                version = None
            except ApiError as error:
                if error.status == 410:  # a watch may also be refused outright for a version too old
                    version = None
                    continue
                if error.status == 404 and self.missing.owns(self.watched.resource):
                    self.missing.lost(self.watched.resource)
                    version = None
                    await asyncio.sleep(MISSING_CRD_SECONDS)
                    continue
                if error.status != 404 or not self.watched.optional:
                    failures = await self._failed(error, failures)
                    continue
                self._forget(set())  # not served: its CRD is not installed, or went with its objects
                self.listed.set()
                version = None
                await asyncio.sleep(UNSERVED_SECONDS)
            except (TransportError, ValueError) as error:
                failures = await self._failed(error, failures)
            except Exception as error:
                version = None
                failures = await self._failed(error, failures, unexpected=True)

    async def _failed(self, error: Exception, failures: int, unexpected: bool = False) -> int:
        """Wait before trying again, longer after each failure in a row; returns the new count.

        An unexpected error is a bug: logged at error level, with its traceback.
        """
        delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
        logger.log(
            logging.ERROR if unexpected else logging.WARNING,
            "watching %s: %s; again in %.1fs",
            self.watched.resource.plural,
            repr(error) if unexpected else error,
            delay,
            exc_info=error if unexpected else None,
        )
        await asyncio.sleep(delay)
        return failures + 1

    async def _list(self) -> str:
        """List in pages into the view; forget what the list no longer has. Returns the list's version."""
        resource = self.watched.resource
        seen: set[tuple[str, str]] = set()
        params = {**self.selector, "limit": str(PAGE_SIZE)}
        version = ""
        while True:
            async with self.listing:
                try:
                    page = await self.api.list_page(resource, self.namespace, params)
                except ApiError as error:
                    if error.status == 410 and "continue" in params:  # the snapshot expired: start over
                        params = {**self.selector, "limit": str(PAGE_SIZE)}
                        seen.clear()
                        version = ""
                        continue
                    raise
                version = version or page["metadata"]["resourceVersion"]
                for item in page["items"]:
                    metadata = item["metadata"]
                    if self.scope.wanted(metadata.get("namespace")):
                        seen.add((metadata.get("namespace", ""), metadata["name"]))
                        self._changed(
                            None, {"apiVersion": page.get("apiVersion"), "kind": resource.kind, **item}
                        )
                following = page["metadata"].get("continue")
                del page
            if not following:
                break
            params = {**params, "continue": following}
        self._forget(seen)
        return version

    def _forget(self, seen: set[tuple[str, str]]) -> None:
        """Objects in the view (in this follower's namespace) that a new list no longer has were deleted."""
        kind = self.watched.resource.kind
        for key in set(self.reconciler.view.keys(kind, self.namespace)) - seen:
            gone = self.reconciler.view.get(kind, *key)
            if gone is not None and self.scope.wanted(key[0] or None):
                self._changed("DELETED", gone)

    async def _watch(self, version: str) -> str:
        """Follow the watch until the server ends it; returns the last resourceVersion seen."""
        resource = self.watched.resource
        params = {**self.selector, "resourceVersion": version, "timeoutSeconds": str(WATCH_SECONDS)}
        async for event in self.api.watch(resource, self.namespace, params):
            body = event["object"]
            if event["type"] == "ERROR":
                if body.get("code") == 410:
                    raise Gone
                raise ApiError(body.get("code", 500), body.get("message", str(body)))
            version = body["metadata"].get("resourceVersion") or version
            if event["type"] != "BOOKMARK" and self.scope.wanted(body["metadata"].get("namespace")):
                self._changed(event["type"], body)
        return version


async def follow_all(
    api: KubeApi, reconciler: Reconciler, missing: MissingCrds, namespaces: tuple[str, ...] = ()
) -> None:
    """Keep the view current until cancelled; once every kind is listed, mark synced and reconcile all.

    Nothing reconciles before that, so a restart's first reconcile of a
    service sees its every child and pod, and writes nothing. Kubeserve's
    kinds whose CRDs are not applied go into `missing` until they are.
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
        logger.info("every watched kind is listed: reconciling every service")
        reconciler.synced.set()
        reconciler.enqueue_all()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
