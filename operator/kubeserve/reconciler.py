"""The reconcile loop: one InferenceService at a time, coalescing bursts of events.

Watch events only mark a service dirty; one task per dirty service plans,
applies and writes status, then runs again if more events came meanwhile.
A bad object gets a condition and an Event and the loop goes on with the
others; a transient API failure is retried with backoff, and so is the
operator's own failure (a bug), after it is logged, counted and shown on the
service as a False condition. A new spec (generation) ends the wait at once,
as a new event does in controller-runtime's queue: the backoff spares the API
server repeats of the same attempt, not the user's change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from kubeserve.api.common import explain
from kubeserve.api.inference_service import InferenceService
from kubeserve.api.serving_runtime import ClusterServingRuntime, ServingRuntime
from kubeserve.apply.applier import sync_children
from kubeserve.apply.client import ApiError, KubeApi, NotLeader, TransportError
from kubeserve.apply.decoding import SPEC_DEPTH, too_deep
from kubeserve.apply.resources import (
    CHILD_KINDS,
    ENDPOINT_SLICE,
    ENDPOINTS,
    HTTP_ROUTE,
    INFERENCE_SERVICE,
    OPTIONAL_KINDS,
    SCALED_OBJECT,
    VIRTUAL_SERVICE,
    Resource,
)
from kubeserve.cache.observed import ClusterView, Key
from kubeserve.config import OperatorConfig
from kubeserve.events import EventType, post_event, timestamp
from kubeserve.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES, WRITES
from kubeserve.planning.naming import LABEL_COMPONENT, LABEL_REVISION
from kubeserve.planning.plan import Plan, PlanInputs, PlanningError, plan_service
from kubeserve.planning.revisions import revision_name
from kubeserve.planning.rollout import LABEL_TRACK, TrackState
from kubeserve.planning.scale_to_zero import SLICE_SERVICE
from kubeserve.planning.traffic import Backend, effective_backend
from kubeserve.status.announcements import announcements
from kubeserve.status.compute import Observed, compute_status, track_pods
from kubeserve.status.conditions import child_refusal, refused
from kubeserve.status.readiness import deployment_verdict

MAX_BACKOFF = 60.0
CONCURRENT_RECONCILES = 16
logger = logging.getLogger(__name__)


def _valid(
    model: type[ServingRuntime] | type[ClusterServingRuntime], bodies: list[dict[str, Any]]
) -> list[Any]:
    """Runtimes that parse; a broken runtime is skipped (and logged), never fatal to the services."""
    parsed = []
    for body in bodies:
        where = too_deep(body)
        if where is not None:
            logger.warning(
                "skipping %s %s: %s is nested deeper than %d levels",
                model.__name__,
                body["metadata"]["name"],
                where,
                SPEC_DEPTH,
            )
            continue
        try:
            parsed.append(model.model_validate(body))
        except ValidationError as error:
            logger.warning("skipping %s %s: %s", model.__name__, body["metadata"]["name"], error)
    return parsed


def _track_states(
    view: ClusterView, namespace: str, name: str, uid: str | None
) -> dict[tuple[str, str], TrackState]:
    tracks = {}
    for deployment in view.owned_by("Deployment", namespace, name, uid):
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        component, track, digest = (
            labels.get(LABEL_COMPONENT),
            labels.get(LABEL_TRACK),
            labels.get(LABEL_REVISION),
        )
        if component and track and digest:
            pods = track_pods(view.owned_by("Pod", namespace, name, None), component, track)
            ready = deployment_verdict("", deployment, pods).ok
            tracks[(component, track)] = TrackState(
                revision_name(name, component, digest), ready, deployment["spec"]["template"]
            )
    return tracks


class Reconciler:
    def __init__(self, api: KubeApi, view: ClusterView, config: OperatorConfig) -> None:
        self.api = api
        self.view = view
        self.config = config
        self._dirty: set[Key] = set()
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._retrying: dict[Key, tuple[int | None, asyncio.Event]] = {}
        """Services waiting out a backoff: the generation that failed, and what a newer one sets."""
        self._discovery = asyncio.Lock()
        # A burst (a thousand services applied, or a restart) plans a few services at a time: the rest
        # wait here holding nothing, and events that arrive meanwhile fold into their one reconcile.
        self._slots = asyncio.Semaphore(CONCURRENT_RECONCILES)
        self._served: dict[Resource, bool] | None = None
        """Whether the cluster serves each optional resource: asked once, then kept by CRD events."""
        self.optional_served = {r: asyncio.Event() for r in OPTIONAL_KINDS}
        """Set while kopf's CRD watch says the resource is served: what its follower waits for."""
        self.active = asyncio.Event()
        """Set while this replica may write: always without leader election, else while it leads."""
        self.active.set()
        self.synced = asyncio.Event()
        """Set once the view holds every watched object (every initial list is done): no reconcile before."""
        self._in_progress = 0
        self.activator: tuple[str, str] | None = None
        """(namespace, name) of the activator's Service, whose slices are followed (scale to zero on)."""

    def reconfigure(self, config: OperatorConfig) -> None:
        """A new operator configuration: every service is planned again under it."""
        self.config = config
        self.enqueue_all()

    def queue_depth(self) -> int:
        return len(self._dirty)

    def in_progress(self) -> int:
        return self._in_progress

    async def served(self) -> dict[Resource, bool]:
        """Which optional resources the cluster serves; the first call asks the API server."""
        async with self._discovery:  # one discovery, not one per service reconciled at start-up
            if self._served is None:
                self._served = {r: await self.api.serves(r) for r in OPTIONAL_KINDS}
                logger.info(
                    "traffic backend: %s; KEDA ScaledObjects served: %s",
                    self._backend_of(self._served),
                    self._served[SCALED_OBJECT],
                )
        return self._served

    def _backend_of(self, served: dict[Resource, bool]) -> Backend:
        return effective_backend(self.config.traffic.backend, served[HTTP_ROUTE], served[VIRTUAL_SERVICE])

    def optional_resource_changed(self, resource: Resource, served: bool) -> None:
        """An optional CRD came or went: re-plan every service if that changes what is served.

        When a CRD goes, its objects went with it, and no watch will say so.
        """
        if served:
            self.optional_served[resource].set()
        else:
            self.optional_served[resource].clear()
        if self._served is None or self._served.get(resource) == served:
            return
        self._served[resource] = served
        logger.info(
            "%s served: %s; traffic backend: %s", resource.kind, served, self._backend_of(self._served)
        )
        if not served:
            for body in self.view.all(resource.kind):
                self.view.record(resource.kind, "DELETED", body)
        self.enqueue_all()

    def enqueue(self, namespace: str, name: str, generation: int | None = None) -> None:
        """Mark a service dirty; `generation`, from its own event, ends a backoff that an older one began."""
        key = (namespace, name)
        self._dirty.add(key)
        retrying = self._retrying.get(key)
        if retrying is not None and generation is not None and generation != retrying[0]:
            retrying[1].set()
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._work(key), name=f"reconcile {namespace}/{name}")

    def enqueue_all(self, namespace: str | None = None) -> None:
        """Every service (names only: no body decoded), those not Ready for their current spec first, as
        slots are taken in order: a restart answers who waits before it re-examines the settled, and an
        operator restarted again and again (each life shorter than a pass over all) still reaches them."""
        for key in self.view.unsettled_first(INFERENCE_SERVICE.kind, namespace):
            self.enqueue(*key)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self, key: Key) -> None:
        backoff = 0.5
        try:
            while key in self._dirty:
                await self.synced.wait()  # a partial view would re-create children it has not seen yet
                await self.active.wait()
                started = time.monotonic()
                try:
                    async with self._slots:
                        self._dirty.discard(key)
                        self._in_progress += 1
                        try:
                            await self.reconcile(*key)
                        finally:
                            self._in_progress -= 1
                    RECONCILES.labels(INFERENCE_SERVICE.kind, "ok").inc()
                    backoff = 0.5
                except NotLeader:
                    logger.info("%s/%s: left for the lease holder", *key)
                    RECONCILES.labels(INFERENCE_SERVICE.kind, "not-leader").inc()
                    self._dirty.add(key)
                except (ApiError, TransportError) as error:
                    RECONCILES.labels(INFERENCE_SERVICE.kind, "error").inc()
                    if isinstance(error, ApiError) and error.status == 404:
                        logger.debug("%s/%s went away during its reconcile", *key)
                        continue
                    if isinstance(error, ApiError) and error.namespace_terminating:
                        logger.debug("%s/%s: its namespace is being deleted", *key)
                        continue
                    if isinstance(error, ApiError) and not error.transient:
                        RECONCILE_ERRORS.labels(INFERENCE_SERVICE.kind, "refused").inc()
                        logger.error("reconcile of %s/%s failed: %s", *key, error)
                        # Not retried: the same spec would be refused again; its next change reconciles.
                        await self._report_failure(key, *child_refusal(error.status, error.message))
                        continue
                    RECONCILE_ERRORS.labels(INFERENCE_SERVICE.kind, "transient").inc()
                    logger.warning("reconcile of %s/%s will be retried in %.1fs: %s", *key, backoff, error)
                    backoff = await self._retry_later(key, backoff)
                except Exception as error:
                    RECONCILES.labels(INFERENCE_SERVICE.kind, "error").inc()
                    RECONCILE_ERRORS.labels(INFERENCE_SERVICE.kind, "bug").inc()
                    logger.exception("reconcile of %s/%s failed unexpectedly; again in %.1fs", *key, backoff)
                    await self._report_failure(
                        key,
                        "InternalError",
                        f"the operator failed to reconcile this service ({type(error).__name__}); "
                        "it tries again with backoff, and its log has the details",
                    )
                    backoff = await self._retry_later(key, backoff)
                finally:
                    RECONCILE_SECONDS.labels(INFERENCE_SERVICE.kind).observe(time.monotonic() - started)
        finally:
            self._running.pop(key, None)

    async def _retry_later(self, key: Key, backoff: float) -> float:
        """Mark the service for another reconcile after `backoff` seconds, or as soon as its spec changes;
        returns the next backoff."""
        self._dirty.add(key)
        body = self.view.get(INFERENCE_SERVICE.kind, *key)
        changed = asyncio.Event()
        self._retrying[key] = (body["metadata"].get("generation") if body else None, changed)
        try:
            await asyncio.wait_for(changed.wait(), backoff)
        except TimeoutError:
            pass
        finally:
            del self._retrying[key]
        return min(backoff * 2, MAX_BACKOFF)

    async def _report_failure(self, key: Key, reason: str, message: str) -> None:
        """Tell the service's owner why its reconcile failed (a child the API server refused, or the
        operator's own failure, named by the exception's type only: its text may quote anything, and
        the log has the traceback); never raises."""
        try:
            body = self.view.get("InferenceService", *key)
            if body is not None:
                await self._refuse(body, reason, message)
        except Exception:
            logger.exception("%s/%s: the failure could not be reported on the service", *key)

    def _activator_slices(self) -> list[dict[str, Any]]:
        if self.activator is None:
            return []
        where, service = self.activator
        return [
            piece
            for piece in self.view.all(ENDPOINT_SLICE.kind, where)
            if (piece["metadata"].get("labels") or {}).get(SLICE_SERVICE) == service
        ]

    async def reconcile(self, namespace: str, name: str) -> None:
        body = self.view.get("InferenceService", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        # Before anything that recurses over the spec (validation, copies, hashes): a spec pruned by the
        # decoder is always this deep, so a service is never planned from a pruned spec.
        where = too_deep(body)
        if where is not None:
            await self._refuse(
                body,
                "TooDeep",
                f"{where} is nested deeper than {SPEC_DEPTH} levels, more than Kubeserve reads: flatten it",
            )
            return
        try:
            service = InferenceService.model_validate(body)
        except ValidationError as error:
            await self._refuse(body, "InvalidSpec", explain(error))
            return
        uid = service.metadata.uid
        served = await self.served()
        idle = self.config.scale_to_zero.enabled  # what only scale to zero reads is decoded only then
        inputs = PlanInputs(
            config=self.config,
            namespaced_runtimes=_valid(ServingRuntime, self.view.all("ServingRuntime", namespace)),
            cluster_runtimes=_valid(ClusterServingRuntime, self.view.all("ClusterServingRuntime")),
            service_accounts={
                sa["metadata"]["name"]: sa for sa in self.view.all("ServiceAccount", namespace)
            },
            tracks=_track_states(self.view, namespace, name, uid),
            backend=self._backend_of(served),
            keda=served[SCALED_OBJECT],
            endpoint_slices=self.view.owned_by(ENDPOINT_SLICE.kind, namespace, name, None) if idle else (),
            activator_slices=self._activator_slices() if idle else (),
        )
        plan, problem = None, None
        try:
            plan = plan_service(service, inputs)
        except PlanningError as error:
            problem = error
        if plan is not None:
            children = [c for kind in CHILD_KINDS for c in self.view.owned_by(kind, namespace, name, uid)]
            result = await sync_children(self.api, self.view, plan.objects, children)
            await self._delete_leftovers(namespace, name, plan)
            for action, written in (("apply", result.applied), ("delete", result.pruned)):
                for kind_and_name in written:
                    WRITES.labels(kind_and_name.partition("/")[0], action).inc()
            if result.applied or result.pruned:
                logger.info(
                    "%s/%s: applied %s, pruned %s",
                    namespace,
                    name,
                    result.applied,
                    result.pruned,
                    extra={"isvc": f"{namespace}/{name}", "applied": result.applied, "pruned": result.pruned},
                )
        observed = Observed(
            deployments={
                d["metadata"]["name"]: d for d in self.view.owned_by("Deployment", namespace, name, uid)
            },
            pods=self.view.owned_by("Pod", namespace, name, None),
            scaled_objects={
                o["metadata"]["name"]: o for o in self.view.owned_by(SCALED_OBJECT.kind, namespace, name, uid)
            },
        )
        status = compute_status(service, plan, problem, observed, timestamp())
        await self._write_status(body, status)
        logger.debug("%s/%s: reconciled", namespace, name)

    async def _delete_leftovers(self, namespace: str, name: str, plan: Plan) -> None:
        """What Kubernetes made of a Service's former selector, which would route beside scale to zero's
        routing slice (`scale_to_zero.py`); a missing one is fine."""
        leftovers = [item for part in plan.components.values() for item in part.leftovers]
        for kind, leftover, uid in leftovers:
            await self.api.delete(
                ENDPOINTS if kind == ENDPOINTS.kind else ENDPOINT_SLICE, namespace, leftover, uid
            )
            WRITES.labels(kind, "delete").inc()
        if leftovers:
            logger.info(
                "%s/%s: deleted %s, left from a selector its Service no longer has",
                namespace,
                name,
                leftovers,
            )

    async def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        previous = body.get("status") or {}
        if status == previous:
            return
        for announcement in announcements(previous, status):
            await self._event(body, announcement.type, announcement.reason, announcement.message)
        metadata = body["metadata"]
        written = await self.api.apply(
            INFERENCE_SERVICE,
            {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "status": status,
            },
            subresource="status",
        )
        WRITES.labels(INFERENCE_SERVICE.kind, "status").inc()
        # Seen at once: a reconcile before the watch event must not write (and announce) it again.
        self.view.record("InferenceService", None, written)
        ready = {c["type"]: c for c in status.get("conditions") or []}.get("Ready", {})
        logger.info(
            "%s/%s: status written, Ready=%s (%s)",
            metadata["namespace"],
            metadata["name"],
            ready.get("status"),
            ready.get("reason"),
            extra={
                "isvc": f"{metadata['namespace']}/{metadata['name']}",
                "ready": ready.get("status"),
                "reason": ready.get("reason"),
            },
        )

    async def _event(self, body: dict[str, Any], event_type: EventType, reason: str, message: str) -> None:
        """A decision worth a person's attention: one log line and one Event."""
        metadata = body["metadata"]
        logger.log(
            logging.WARNING if event_type == "Warning" else logging.INFO,
            "%s/%s: %s: %s",
            metadata["namespace"],
            metadata["name"],
            reason,
            message,
            extra={"isvc": f"{metadata['namespace']}/{metadata['name']}", "reason": reason},
        )
        try:
            await post_event(self.api, body, event_type, reason, message, timestamp())
            WRITES.labels("Event", "event").inc()
        except ApiError as error:
            logger.warning("could not post event %s: %s", reason, error)

    async def _refuse(self, body: dict[str, Any], reason: str, message: str) -> None:
        """A service the operator will not plan: a spec the API server let through but the operator
        cannot read (CRDs older than the operator, nesting too deep), or the operator's own failure."""
        status = refused(
            body.get("status") or {}, body["metadata"].get("generation"), reason, message, timestamp()
        )
        await self._write_status(body, status)
