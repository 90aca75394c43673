"""The three interfaces against the Kubernetes API: Services labelled for scale to zero are the targets,
their pods Services' EndpointSlices the endpoints, and the Deployments' scale subresource the waker (and
the idle scale-down's hand).

The scale-to-zero Services of one InferenceService (label `serving.kubeserve.io/inferenceservice`) are
one group: woken together and scaled down together, so a transformer and its predictor come up at once.

Each watched object is kept only as the few fields the request path reads, so memory grows with the
number of targets and their pods, not with the size of the objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubeserve_activator.interfaces import Endpoint, Probe, Target
from kubeserve_activator.kube_api import ApiError, KubeApi
from kubeserve_activator.watching import Follower

log = logging.getLogger(__name__)
SCALE_TO_ZERO_LABEL = "serving.kubeserve.io/scale-to-zero"
INFERENCE_SERVICE_LABEL = "serving.kubeserve.io/inferenceservice"
DEPLOYMENT_ANNOTATION = "serving.kubeserve.io/deployment"  # comma-separated: a canary adds a track
PODS_SERVICE_ANNOTATION = "serving.kubeserve.io/pods-service"
IDLE_WINDOW_ANNOTATION = "serving.kubeserve.io/idle-window-seconds"
READINESS_ANNOTATION = "serving.kubeserve.io/readiness-probe"  # `<container port>:<path>`
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HTTP_PORT_NAME = "http"


def is_grpc_port(name: str) -> bool:
    """KServe's names for a gRPC port, as the operator reads them when it routes one here."""
    return name == "h2c" or name.startswith("grpc")


@dataclass(frozen=True)
class Route:
    """What the activator knows of a target Service: where its pods are listed, what to scale."""

    deployments: tuple[str, ...]
    pods_service: str
    port_name: str  # the Service port proxied traffic is for: `http`, else the first
    cluster_ip: str | None
    inference_service: str | None = None
    idle_window: str | None = None  # the annotation as written; the idle scale-down checks it
    readiness: tuple[int, str] | None = None  # the pods' readiness probe: (container port, path)
    grpc_port_name: str | None = None  # the Service port gRPC is for, if it has one


def readiness_probe(annotation: str | None) -> tuple[int, str] | None:
    """`8080:/v2/health/ready` as (8080, "/v2/health/ready"); anything else is no probe to ask (the
    activator then waits for the kubelet's verdict, as it would without the annotation)."""
    port, _, path = (annotation or "").partition(":")
    if not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536 and path.startswith("/")):
        return None
    return int(port), path


# (namespace, InferenceService); a Service without the label is a group of its own, keyed `/<name>`
# (a label value has no `/`, so the two kinds of key never meet).
GroupKey = tuple[str, str]


def group_key(target: Target, route: Route) -> GroupKey:
    return (target.namespace, route.inference_service or f"/{target.name}")


def _target(obj: dict[str, Any]) -> Target:
    return Target(obj["metadata"]["namespace"], obj["metadata"]["name"])


class ClusterTargets:
    """The labelled Services (a `Targets`), by name and by ClusterIP; a `Collection` of Services."""

    def __init__(self) -> None:
        self._routes: dict[Target, Route] = {}
        self._by_address: dict[str, Target] = {}
        self._groups: dict[GroupKey, set[Target]] = {}
        self.endpoints: ClusterEndpoints | None = None
        """Told of each route change, so it follows the right pods Services."""

    def find(self, namespace: str, name: str) -> Target | None:
        target = Target(namespace, name)
        return target if target in self._routes else None

    def find_address(self, address: str) -> Target | None:
        return self._by_address.get(address)

    def route(self, target: Target) -> Route | None:
        return self._routes.get(target)

    def routes(self) -> Iterable[tuple[Target, Route]]:
        return self._routes.items()

    def group(self, target: Target) -> list[tuple[Target, Route]]:
        """The target and the other scale-to-zero Services of its InferenceService, with their routes."""
        route = self._routes.get(target)
        if route is None:
            return []
        return [(member, self._routes[member]) for member in self._groups[group_key(target, route)]]

    def groups(self) -> dict[GroupKey, list[tuple[Target, Route]]]:
        return {
            key: [(member, self._routes[member]) for member in members]
            for key, members in self._groups.items()
        }

    def reset(self, objects: list[dict[str, Any]], namespace: str | None = None) -> None:
        """The fresh list of one namespace's Services, or of all namespaces' (None)."""
        for target in [t for t in self._routes if namespace in (None, t.namespace)]:
            self._drop(target)
        for obj in objects:
            self._put(obj)
        self._changed()

    def scoped(self, namespace: str) -> _NamespaceTargets:
        return _NamespaceTargets(self, namespace)

    def update(self, event: str, obj: dict[str, Any]) -> None:
        target = _target(obj)
        self._drop(target)
        if event != "DELETED":
            self._put(obj)
        self._changed(target)

    def _put(self, obj: dict[str, Any]) -> None:
        """A Service without both annotations is not served: it cannot be woken nor followed."""
        annotations = obj["metadata"].get("annotations") or {}
        deployments = tuple(
            name.strip() for name in (annotations.get(DEPLOYMENT_ANNOTATION) or "").split(",") if name.strip()
        )
        pods = annotations.get(PODS_SERVICE_ANNOTATION)
        if not deployments or not pods:
            return
        spec = obj.get("spec") or {}
        names = [port.get("name", "") for port in spec.get("ports") or []]
        port_name = HTTP_PORT_NAME if HTTP_PORT_NAME in names else (names[0] if names else "")
        cluster_ip = spec.get("clusterIP")
        cluster_ip = cluster_ip if cluster_ip and cluster_ip != "None" else None
        target = _target(obj)
        labels = obj["metadata"].get("labels") or {}
        route = Route(
            deployments,
            pods,
            port_name,
            cluster_ip,
            labels.get(INFERENCE_SERVICE_LABEL) or None,
            annotations.get(IDLE_WINDOW_ANNOTATION),
            readiness_probe(annotations.get(READINESS_ANNOTATION)),
            next((name for name in names if is_grpc_port(name)), None),
        )
        self._routes[target] = route
        self._groups.setdefault(group_key(target, route), set()).add(target)
        if cluster_ip:
            self._by_address[cluster_ip] = target

    def _drop(self, target: Target) -> None:
        route = self._routes.pop(target, None)
        if route is None:
            return
        if route.cluster_ip:
            self._by_address.pop(route.cluster_ip, None)
        key = group_key(target, route)
        self._groups[key].discard(target)
        if not self._groups[key]:
            del self._groups[key]

    def _changed(self, target: Target | None = None) -> None:
        if self.endpoints is not None:
            self.endpoints.routes_changed(target)


@dataclass(frozen=True)
class _NamespaceTargets:
    """The `Collection` of one namespace's follower: its list replaces that namespace's targets only."""

    targets: ClusterTargets
    namespace: str

    def reset(self, objects: list[dict[str, Any]]) -> None:
        self.targets.reset(objects, self.namespace)

    def update(self, event: str, obj: dict[str, Any]) -> None:
        self.targets.update(event, obj)


@dataclass(frozen=True)
class _Slice:
    ready: tuple[str, ...]
    starting: tuple[str, ...]  # not Ready, not terminating: pods on their way up
    ports: tuple[tuple[str, int], ...]  # (Service port name, container port)


def _addresses(endpoints: list[dict[str, Any]], ready: bool) -> tuple[str, ...]:
    """Ready ones (no condition counts as Ready, as the API says), or those starting."""
    found: list[str] = []
    for endpoint in endpoints:
        conditions = endpoint.get("conditions") or {}
        is_ready = conditions.get("ready") is not False
        if is_ready == ready and (ready or not conditions.get("terminating")):
            found.extend(endpoint.get("addresses") or [])
    return tuple(found)


class ClusterEndpoints:
    """Ready addresses of the targets' pods Services (an `Endpoints`); a `Collection` of EndpointSlices.

    Slices of Services that are no target's pods Service are dropped as they arrive; when a target
    names a pods Service not followed yet, the follower is asked to list again so its slices come in.
    """

    def __init__(self, targets: ClusterTargets) -> None:
        self._targets = targets
        targets.endpoints = self
        self._followed: set[tuple[str, str]] = set()  # (namespace, pods Service)
        self._slices: dict[tuple[str, str], dict[str, _Slice]] = {}
        self._vouched: dict[tuple[str, str], set[str]] = {}  # starting addresses whose probe said ready
        self._changes: dict[Target, asyncio.Future[None]] = {}
        self.follower: Follower | None = None

    def ready(self, target: Target) -> list[Endpoint]:
        route = self._targets.route(target)
        if route is None:
            return []
        key = (target.namespace, route.pods_service)
        vouched = self._vouched.get(key, set())
        found: list[Endpoint] = []
        for piece in self._slices.get(key, {}).values():
            port = dict(piece.ports).get(route.port_name)
            if port is not None:
                found.extend((address, port) for address in piece.ready)
                found.extend((address, port) for address in piece.starting if address in vouched)
        return found

    def grpc_port(self, target: Target) -> int | None:
        route = self._targets.route(target)
        if route is None or route.grpc_port_name is None:
            return None
        for piece in self._slices.get((target.namespace, route.pods_service), {}).values():
            if (port := dict(piece.ports).get(route.grpc_port_name)) is not None:
                return port
        return None

    def starting(self, target: Target) -> list[Probe]:
        route = self._targets.route(target)
        if route is None or route.readiness is None:
            return []
        key = (target.namespace, route.pods_service)
        vouched = self._vouched.get(key, set())
        probe_port, path = route.readiness
        return [
            Probe((address, port), probe_port, path)
            for piece in self._slices.get(key, {}).values()
            if (port := dict(piece.ports).get(route.port_name)) is not None
            for address in piece.starting
            if address not in vouched
        ]

    def vouch(self, target: Target, endpoint: Endpoint) -> None:
        route = self._targets.route(target)
        if route is not None:
            self._vouched.setdefault((target.namespace, route.pods_service), set()).add(endpoint[0])
            self._fire([target])

    def changed(self, target: Target) -> Awaitable[object]:
        """A future, shielded: a cancelled awaiter leaves it pending for the others."""
        change = self._changes.get(target)
        if change is None:
            change = self._changes[target] = asyncio.get_running_loop().create_future()
        return asyncio.shield(change)

    def routes_changed(self, target: Target | None) -> None:
        wanted = {(t.namespace, r.pods_service) for t, r in self._targets.routes()}
        new = wanted - self._followed
        self._followed = wanted
        for key in set(self._slices) - wanted:
            del self._slices[key]
            self._vouched.pop(key, None)
        if new and self.follower is not None and self.follower.listed.is_set():
            self.follower.relist()
        self._fire(list(self._changes) if target is None else [target])

    def reset(self, objects: list[dict[str, Any]]) -> None:
        self._slices.clear()
        self._vouched.clear()
        for obj in objects:
            self.update("ADDED", obj)
        self._fire(list(self._changes))

    def update(self, event: str, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        key = (metadata["namespace"], (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL, ""))
        if key not in self._followed:
            return
        slices = self._slices.setdefault(key, {})
        if event == "DELETED":
            slices.pop(metadata["name"], None)
        else:
            endpoints = obj.get("endpoints") or []
            slices[metadata["name"]] = _Slice(
                _addresses(endpoints, ready=True),
                _addresses(endpoints, ready=False),
                tuple((port.get("name") or "", int(port["port"])) for port in obj.get("ports") or []),
            )
        if key in self._vouched:  # a vouch lasts while the pod is starting: then the kubelet decides
            self._vouched[key] &= {address for piece in slices.values() for address in piece.starting}
        self._fire(
            [
                t
                for t, r in self._targets.routes()
                if (t.namespace, r.pods_service) == key and t in self._changes
            ]
        )

    def _fire(self, targets: Iterable[Target]) -> None:
        for target in targets:
            if (change := self._changes.pop(target, None)) and not change.done():
                change.set_result(None)


@dataclass(frozen=True)
class ScaleDown:
    scaled: tuple[str, ...]
    """The Deployments this scale-down set to 0."""
    interrupted: bool
    """A request came, or someone changed a Deployment's scale between the read and the patch."""


class ScaleWaker:
    """A `Waker` that wakes a target's whole group, and the idle scale-down of a group, through the
    Deployments' scale subresource.

    Each change is a read, then a merge patch carrying the read resourceVersion: a Deployment scaled by
    someone else in between refuses it (409). A wake reads again and only ever goes from 0 to 1, so it
    never lowers replicas nor adds a second one; a scale-down gives up, so it never fights a wake or a
    human. Wakes and scale-downs of one group take turns (a lock per group): this activator never wakes
    a group in the middle of scaling it down.
    """

    ATTEMPTS = 5

    def __init__(self, api: KubeApi, targets: ClusterTargets) -> None:
        self._api = api
        self._targets = targets
        self._locks: defaultdict[GroupKey, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._waking: dict[GroupKey, asyncio.Task[dict[Target, ApiError]]] = {}
        self.patches = 0

    async def wake(self, target: Target) -> None:
        """Wake the group; concurrent wakes of one group share one pass. Raises the failure of the
        target's own Deployments only: a sibling's is logged, and asked again on its own first request."""
        route = self._targets.route(target)
        if route is None:
            raise ApiError(0, f"service {target} is no longer labelled {SCALE_TO_ZERO_LABEL}")
        key = group_key(target, route)
        task = self._waking.get(key)
        if task is None:
            task = self._waking[key] = asyncio.create_task(self._wake_group(key, self._targets.group(target)))
            task.add_done_callback(
                lambda done: self._waking.pop(key) if self._waking.get(key) is done else None
            )
        failures = await asyncio.shield(task)
        if (failure := failures.get(target)) is not None:
            raise failure

    async def _wake_group(self, key: GroupKey, members: list[tuple[Target, Route]]) -> dict[Target, ApiError]:
        pairs = [(member, name) for member, route in members for name in route.deployments]
        async with self._locks[key]:
            results = await asyncio.gather(
                *(self._wake_deployment(member.namespace, name) for member, name in pairs),
                return_exceptions=True,
            )
        failures: dict[Target, ApiError] = {}
        for (member, name), result in zip(pairs, results, strict=True):
            if isinstance(result, ApiError):
                log.warning("waking deployment %s/%s for %s: %s", member.namespace, name, member, result)
                failures.setdefault(member, result)
            elif isinstance(result, BaseException):
                raise result
        return failures

    async def _wake_deployment(self, namespace: str, name: str) -> None:
        path = _scale_path(namespace, name)
        for _ in range(self.ATTEMPTS):
            scale = await self._api.get(path)
            if (scale.get("spec") or {}).get("replicas", 0) > 0:
                return
            try:
                await self._patch_replicas(path, scale, 1)
            except ApiError as error:
                if error.status == 409:
                    continue
                raise
            return
        raise ApiError(409, f"deployment {name}: scale kept changing under {self.ATTEMPTS} attempts")

    async def scale_down(
        self, key: GroupKey, members: list[tuple[Target, Route]], still_idle: Callable[[], bool]
    ) -> ScaleDown:
        """Every Deployment of the group to 0, unless `still_idle()` says a request came meanwhile (it is
        asked once the group's lock is held, so no wake of this activator slips in between)."""
        scaled: list[str] = []
        async with self._locks[key]:
            for member, route in members:
                for name in route.deployments:
                    if not still_idle():
                        return ScaleDown(tuple(scaled), interrupted=True)
                    path = _scale_path(member.namespace, name)
                    scale = await self._api.get(path)
                    if not (scale.get("spec") or {}).get("replicas", 0):
                        continue
                    try:
                        await self._patch_replicas(path, scale, 0)
                    except ApiError as error:
                        if error.status != 409:
                            raise
                        log.info(
                            "deployment %s/%s changed scale meanwhile: left as it is", member.namespace, name
                        )
                        return ScaleDown(tuple(scaled), interrupted=True)
                    scaled.append(name)
        return ScaleDown(tuple(scaled), interrupted=False)

    async def _patch_replicas(self, path: str, scale: dict[str, Any], replicas: int) -> None:
        """Only if the scale is still the one read (its resourceVersion): else 409."""
        version = scale["metadata"]["resourceVersion"]
        await self._api.merge_patch(
            path, {"metadata": {"resourceVersion": version}, "spec": {"replicas": replicas}}
        )
        self.patches += 1


def _scale_path(namespace: str, deployment: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale"


@dataclass
class ClusterSide:
    targets: ClusterTargets
    endpoints: ClusterEndpoints
    waker: ScaleWaker
    followers: list[Follower]


@contextlib.asynccontextmanager
async def following(api: KubeApi, namespaces: Iterable[str] = ()) -> AsyncIterator[ClusterSide]:
    """Targets, Endpoints and Waker of the cluster, their watches running until the context ends.

    Entered at once, without waiting for the API server: until the first lists arrive every Host is
    unknown (404), and the watches keep trying in the background.
    """
    targets = ClusterTargets()
    endpoints = ClusterEndpoints(targets)
    selector = {"labelSelector": f"{SCALE_TO_ZERO_LABEL}=true"}
    followers = [
        Follower(api, f"/api/v1/namespaces/{namespace}/services", selector, targets.scoped(namespace))
        for namespace in namespaces
    ] or [Follower(api, "/api/v1/services", selector, targets)]
    slices = Follower(
        api, "/apis/discovery.k8s.io/v1/endpointslices", {"labelSelector": SERVICE_NAME_LABEL}, endpoints
    )
    endpoints.follower = slices
    followers.append(slices)
    tasks = [asyncio.create_task(follower.run()) for follower in followers]
    try:
        yield ClusterSide(targets, endpoints, ScaleWaker(api, targets), followers)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
