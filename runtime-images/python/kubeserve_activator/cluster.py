"""The three interfaces against the Kubernetes API: Services labelled for scale to zero are the targets,
their pods Services' EndpointSlices the endpoints, and the Deployment's scale subresource the waker.

Each watched object is kept only as the few fields the request path reads, so memory grows with the
number of targets and their pods, not with the size of the objects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from kubeserve_activator.interfaces import Endpoint, Target
from kubeserve_activator.kube_api import ApiError, KubeApi
from kubeserve_activator.watching import Follower

SCALE_TO_ZERO_LABEL = "serving.kubeserve.io/scale-to-zero"
DEPLOYMENT_ANNOTATION = "serving.kubeserve.io/deployment"
PODS_SERVICE_ANNOTATION = "serving.kubeserve.io/pods-service"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HTTP_PORT_NAME = "http"


@dataclass(frozen=True)
class Route:
    """What the activator knows of a target Service: where its pods are listed, what to scale."""

    deployment: str
    pods_service: str
    port_name: str  # the Service port proxied traffic is for: `http`, else the first
    cluster_ip: str | None


def _target(obj: dict[str, Any]) -> Target:
    return Target(obj["metadata"]["namespace"], obj["metadata"]["name"])


class ClusterTargets:
    """The labelled Services (a `Targets`), by name and by ClusterIP; a `Collection` of Services."""

    def __init__(self) -> None:
        self._routes: dict[Target, Route] = {}
        self._by_address: dict[str, Target] = {}
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
        deployment, pods = annotations.get(DEPLOYMENT_ANNOTATION), annotations.get(PODS_SERVICE_ANNOTATION)
        if not deployment or not pods:
            return
        spec = obj.get("spec") or {}
        names = [port.get("name", "") for port in spec.get("ports") or []]
        port_name = HTTP_PORT_NAME if HTTP_PORT_NAME in names else (names[0] if names else "")
        cluster_ip = spec.get("clusterIP")
        cluster_ip = cluster_ip if cluster_ip and cluster_ip != "None" else None
        target = _target(obj)
        self._routes[target] = Route(deployment, pods, port_name, cluster_ip)
        if cluster_ip:
            self._by_address[cluster_ip] = target

    def _drop(self, target: Target) -> None:
        route = self._routes.pop(target, None)
        if route is not None and route.cluster_ip:
            self._by_address.pop(route.cluster_ip, None)

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
    ports: tuple[tuple[str, int], ...]  # (Service port name, container port)


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
        self._changes: dict[Target, asyncio.Future[None]] = {}
        self.follower: Follower | None = None

    def ready(self, target: Target) -> list[Endpoint]:
        route = self._targets.route(target)
        if route is None:
            return []
        found: list[Endpoint] = []
        for piece in self._slices.get((target.namespace, route.pods_service), {}).values():
            port = dict(piece.ports).get(route.port_name)
            if port is not None:
                found.extend((address, port) for address in piece.ready)
        return found

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
        if new and self.follower is not None and self.follower.listed.is_set():
            self.follower.relist()
        self._fire(list(self._changes) if target is None else [target])

    def reset(self, objects: list[dict[str, Any]]) -> None:
        self._slices.clear()
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
            slices[metadata["name"]] = _Slice(
                tuple(
                    address
                    for endpoint in obj.get("endpoints") or []
                    if (endpoint.get("conditions") or {}).get("ready") is not False
                    for address in endpoint.get("addresses") or []
                ),
                tuple((port.get("name") or "", int(port["port"])) for port in obj.get("ports") or []),
            )
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


class ScaleWaker:
    """A `Waker`: the Deployment's scale subresource from 0 to 1 replica, and only from 0.

    Read, then a merge patch carrying the read resourceVersion: a Deployment scaled by someone else in
    between refuses it (409) and is read again, so a wake never lowers replicas nor adds a second one.
    """

    ATTEMPTS = 5

    def __init__(self, api: KubeApi, targets: ClusterTargets) -> None:
        self._api = api
        self._targets = targets
        self.patches = 0

    async def wake(self, target: Target) -> None:
        route = self._targets.route(target)
        if route is None:
            raise ApiError(0, f"service {target} is no longer labelled {SCALE_TO_ZERO_LABEL}")
        path = f"/apis/apps/v1/namespaces/{target.namespace}/deployments/{route.deployment}/scale"
        for _ in range(self.ATTEMPTS):
            scale = await self._api.get(path)
            if (scale.get("spec") or {}).get("replicas", 0) > 0:
                return
            version = scale["metadata"]["resourceVersion"]
            try:
                await self._api.merge_patch(
                    path, {"metadata": {"resourceVersion": version}, "spec": {"replicas": 1}}
                )
            except ApiError as error:
                if error.status == 409:
                    continue
                raise
            self.patches += 1
            return
        raise ApiError(
            409, f"deployment {route.deployment}: scale kept changing under {self.ATTEMPTS} attempts"
        )


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
