"""The activator's cluster side against the session's real API server: Services labelled for scale to
zero are found by Host and by ClusterIP, a cold request scales the Deployment from 0 to 1 once however
many are held, kwok's Ready pod shows in the endpoints, and a watch the server expires lists again.

kwok's pod IPs are not ours to dial (the test network is loopback only) and the API server refuses a
loopback address in a slice, so the last hop, from the activator to a Ready pod, goes to a loopback
kubeserve-server (`LoopbackPodNetwork`); everything before it is the real cluster's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from kubeserve.devcluster.ports import free_port
from kubeserve_activator.cluster import (
    DEPLOYMENT_ANNOTATION,
    PODS_SERVICE_ANNOTATION,
    SCALE_TO_ZERO_LABEL,
    ClusterEndpoints,
    ClusterSide,
    ScaleWaker,
    following,
)
from kubeserve_activator.interfaces import Endpoint, Endpoints, Target
from kubeserve_activator.kube_api import ApiError, KubeApi, from_kubeconfig
from kubeserve_activator.server import RunningActivator, start
from tests.activator.conftest import TEST_CONFIG, client, infer_body, until
from tests.polling import eventually
from tests.server.conftest import Server, Trained

POD_PORT = 8080


def create_deployment(
    kube: k8s.ApiClient, namespace: str, image: str, name: str, labels: Mapping[str, str]
) -> None:
    """A Deployment at 0 replicas, as the operator leaves a component with minReplicas 0."""
    k8s.AppsV1Api(kube).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "containers": [
                            {"name": "main", "image": image, "ports": [{"containerPort": POD_PORT}]}
                        ]
                    },
                },
            },
        },
    )


def create_cold_service(
    kube: k8s.ApiClient,
    namespace: str,
    image: str,
    name: str = "iris-predictor",
    pod_selector: bool = True,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> None:
    """As the operator lays out a component with minReplicas 0: a Deployment at 0 replicas, its headless
    pods Service (without its selector, no pod is ever listed), and the selector-less public Service,
    labelled and annotated (`labels` and `annotations` add to, or replace, the usual ones)."""
    selector = {"app": name}
    create_deployment(kube, namespace, image, name, selector)
    ports = [{"name": "http", "port": 80, "targetPort": POD_PORT, "protocol": "TCP"}]
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": f"{name}-pods"},
            "spec": {"clusterIP": "None", "ports": ports} | ({"selector": selector} if pod_selector else {}),
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": {SCALE_TO_ZERO_LABEL: "true", **(labels or {})},
                "annotations": {
                    DEPLOYMENT_ANNOTATION: name,
                    PODS_SERVICE_ANNOTATION: f"{name}-pods",
                    **(annotations or {}),
                },
            },
            "spec": {"ports": ports},
        },
    )


def replicas(kube: k8s.ApiClient, namespace: str, name: str = "iris-predictor") -> int:
    return int(k8s.AppsV1Api(kube).read_namespaced_deployment_scale(name, namespace).spec.replicas or 0)


@pytest.fixture
def cold_service(kube: k8s.ApiClient, namespace: str, pod_image: str) -> Iterator[Target]:
    create_cold_service(kube, namespace, pod_image)
    yield Target(namespace, "iris-predictor")


class TimedWaker:
    """The real waker, with the time each wake returned (its PATCH answered)."""

    def __init__(self, waker: ScaleWaker) -> None:
        self.waker = waker
        self.done: list[float] = []

    async def wake(self, target: Target) -> None:
        await self.waker.wake(target)
        self.done.append(time.monotonic())


@contextlib.asynccontextmanager
async def activator_on_cluster(
    kubeconfig: str,
    api: KubeApi | None = None,
    namespaces: tuple[str, ...] = (),
    network: Callable[[ClusterEndpoints], Endpoints] = lambda endpoints: endpoints,
    **settings: Any,
) -> AsyncIterator[tuple[ClusterSide, TimedWaker, RunningActivator]]:
    """The activator in this event loop, following the session's API server; entered once it listed."""
    api = api or KubeApi(from_kubeconfig(Path(kubeconfig)))
    try:
        async with following(api, namespaces) as side:
            for follower in side.followers:
                await asyncio.wait_for(follower.listed.wait(), 30)
            waker = TimedWaker(side.waker)
            running = await start(
                replace(TEST_CONFIG, **settings), side.targets, network(side.endpoints), waker
            )
            try:
                yield side, waker, running
            finally:
                await running.close()
    finally:
        await api.close()


class LoopbackPodNetwork:
    """The pod network of the test: each Ready pod the activator's endpoints list (kwok's, with an IP that
    is not ours to dial, the test network being loopback only, and which the API server will not let a
    slice replace with a loopback address) is reached at one loopback kubeserve-server, or at the
    loopback port given for its Service's name."""

    def __init__(self, endpoints: ClusterEndpoints, backend: Server | Mapping[str, int]) -> None:
        self.endpoints = endpoints
        self._backend = backend

    def ready(self, target: Target) -> list[Endpoint]:
        backend = self._backend
        port = backend.http_port if isinstance(backend, Server) else backend[target.name]
        return [("127.0.0.1", port) for _ in self.endpoints.ready(target)]

    def changed(self, target: Target) -> Awaitable[object]:
        return self.endpoints.changed(target)


async def test_twenty_cold_requests_wake_the_deployment_once_and_get_the_models_answers(
    kube: k8s.ApiClient,
    kubeconfig: str,
    cold_service: Target,
    iris_backend: Server,
    sklearn_iris: Trained,
) -> None:
    namespace = cold_service.namespace
    rows = sklearn_iris.features[::7][:20]
    network = functools.partial(LoopbackPodNetwork, backend=iris_backend)
    async with (
        activator_on_cluster(kubeconfig, network=network, hold_seconds=30) as (side, waker, running),
        client(running, host=f"iris-predictor.{namespace}.svc.cluster.local:80") as http,
    ):
        assert side.targets.find(namespace, "iris-predictor") == cold_service
        assert side.endpoints.ready(cold_service) == []
        started = time.monotonic()
        responses = await asyncio.gather(
            *(http.post("/v2/models/iris/infer", json=infer_body(row)) for row in rows)
        )
        answered = time.monotonic()
        assert [response.status_code for response in responses] == [200] * 20
        answers = [response.json()["outputs"][0]["data"][0] for response in responses]
        assert answers == sklearn_iris.model.predict(rows).tolist()
        assert replicas(kube, namespace) == 1
        assert side.waker.patches == 1 and len(waker.done) == 1, "20 held requests asked for one replica"
        pods = k8s.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=iris-predictor").items
        assert [(pod.status.pod_ip, POD_PORT) for pod in pods] == side.endpoints.ready(cold_service)
        print(
            f"\ncold request -> wake PATCH answered: {waker.done[0] - started:.3f} s; "
            f"-> 20 answers (kwok pod Ready and listed): {answered - started:.3f} s"
        )
        assert (await http.post("/v2/models/iris/infer", json=infer_body(rows[0]))).status_code == 200
        assert side.waker.patches == 1


async def test_kwoks_ready_pod_shows_in_the_endpoints_with_its_ip_and_port(
    kube: k8s.ApiClient, kubeconfig: str, cold_service: Target
) -> None:
    """The real EndpointSlice controller lists the woken pod; no request is sent (its IP is not ours)."""
    namespace = cold_service.namespace
    async with activator_on_cluster(kubeconfig) as (side, waker, _):
        changed = side.endpoints.changed(cold_service)
        started = time.monotonic()
        await waker.wake(cold_service)
        await asyncio.wait_for(changed, 30)
        await until(_async(lambda: side.endpoints.ready(cold_service)), seconds=30)
        ready = time.monotonic()
        pods = k8s.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=iris-predictor").items
        assert len(pods) == 1 and pods[0].status.pod_ip
        assert side.endpoints.ready(cold_service) == [(pods[0].status.pod_ip, POD_PORT)]
        assert replicas(kube, namespace) == 1
        print(
            f"\nwake PATCH: {waker.done[0] - started:.3f} s; "
            f"kwok pod Ready in the endpoints: {ready - started:.3f} s"
        )


async def test_a_deployment_already_scaled_up_is_left_alone(
    kube: k8s.ApiClient, kubeconfig: str, cold_service: Target
) -> None:
    k8s.AppsV1Api(kube).patch_namespaced_deployment_scale(
        "iris-predictor", cold_service.namespace, {"spec": {"replicas": 3}}
    )
    async with activator_on_cluster(kubeconfig) as (side, _, _):
        await side.waker.wake(cold_service)
        await side.waker.wake(cold_service)
    assert side.waker.patches == 0
    assert replicas(kube, cold_service.namespace) == 3


async def test_unknown_host_is_404_and_the_cluster_ip_finds_its_service(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, pod_image: str
) -> None:
    create_cold_service(kube, namespace, pod_image, pod_selector=False)  # nothing Ready: held, then 503
    cold_service = Target(namespace, "iris-predictor")
    cluster_ip = k8s.CoreV1Api(kube).read_namespaced_service("iris-predictor", namespace).spec.cluster_ip
    async with activator_on_cluster(kubeconfig, namespaces=(namespace,), hold_seconds=1) as (
        side,
        _,
        running,
    ):
        await until(_async(lambda: side.targets.find_address(cluster_ip) is not None))
        assert side.targets.find_address(cluster_ip) == cold_service
        # The pods Service itself is no target: it is not labelled.
        for host in (f"iris-predictor-pods.{namespace}", f"nothing.{namespace}", "10.255.255.1"):
            async with client(running, host=host) as http:
                response = await http.get("/")
                assert response.status_code == 404, host
                assert host in response.json()["error"]
        async with client(running, host=f"{cluster_ip}:80") as http:
            response = await http.get("/")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert response.json()["service"] == f"{namespace}/iris-predictor"
    assert replicas(kube, namespace) == 1


class FirstWatchExpires(KubeApi):
    """Our client against the real API server, except that its first watch of Services is answered with
    the 410 Gone event a server sends after a long disconnection (a fresh server's watch cache still
    holds every version, so a real one cannot be provoked in seconds)."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(from_kubeconfig(Path(kubeconfig)))
        self.expired_sent = False

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        if path.endswith("/services") and not self.expired_sent:
            self.expired_sent = True
            yield {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
            return
        async for event in super().watch(path, params):
            yield event


async def test_a_watch_expired_by_the_api_server_lists_again_and_sees_new_services(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, pod_image: str
) -> None:
    api = FirstWatchExpires(kubeconfig)
    async with activator_on_cluster(kubeconfig, api=api, namespaces=(namespace,)) as (side, _, _):
        services = side.followers[0]
        await until(_async(lambda: services.lists >= 2))
        assert api.expired_sent
        create_cold_service(kube, namespace, pod_image, name="late")
        await until(_async(lambda: side.targets.find(namespace, "late") is not None))


def _async(check: Any) -> Any:
    async def condition() -> bool:
        return bool(check())

    return condition


def healthy(admin_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{admin_port}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_the_entry_point_serves_the_cluster_with_a_kubeconfig(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, pod_image: str, tmp_path: Path
) -> None:
    """`python -m kubeserve_activator` as the image runs it: unknown Host 404, a cold one woken, JSON logs."""
    create_cold_service(kube, namespace, pod_image, pod_selector=False)
    port, admin = free_port(), free_port()
    log_path = tmp_path / "activator.log"
    flags = ["--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin)]
    flags += ["--hold-seconds", "1", "--namespace", namespace]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubeserve_activator", "--kubeconfig", kubeconfig, *flags],
            stderr=log_file,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            eventually(lambda: healthy(admin), 30, "the activator's /healthz")
            assert http.get("/", headers={"Host": f"nothing.{namespace}"}).status_code == 404
            cold = f"iris-predictor.{namespace}"
            eventually(lambda: http.get("/", headers={"Host": cold}).status_code == 503, 30)
        assert replicas(kube, namespace) == 1
    finally:
        process.terminate()
        assert process.wait(10) == 0
    first = json.loads(log_path.read_text().splitlines()[0])
    assert first["level"] == "info" and "listening" in first["message"]


async def test_a_refused_wake_reaches_the_held_requests_503(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, pod_image: str
) -> None:
    create_cold_service(kube, namespace, pod_image, pod_selector=False)
    k8s.AppsV1Api(kube).delete_namespaced_deployment("iris-predictor", namespace)
    async with (
        activator_on_cluster(kubeconfig, namespaces=(namespace,)) as (_, _, running),
        client(running, host=f"iris-predictor.{namespace}") as http,
    ):
        response = await http.get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    message = response.json()["error"]
    assert f"waking service {namespace}/iris-predictor failed: 404" in message
    assert "deployments/iris-predictor/scale" in message, message


class WatchesRefused(KubeApi):
    """Our client against the real API server, except that every watch is refused as by a server in
    trouble: the follower must back off, not reconnect in a tight loop."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(from_kubeconfig(Path(kubeconfig)))
        self.watches = 0

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        self.watches += 1
        raise ApiError(500, f"watch {path}: etcdserver: leader changed")
        yield {}  # an async generator, as the real one


async def test_refused_watches_back_off(kubeconfig: str, namespace: str) -> None:
    api = WatchesRefused(kubeconfig)
    async with activator_on_cluster(kubeconfig, api=api, namespaces=(namespace,)) as (side, _, _):
        await asyncio.sleep(2.0)
        lists = [follower.lists for follower in side.followers]
    # Two followers, each at 0.5 s then 1 s then 2 s between tries: at most 3 tries each in 2 s.
    assert 2 <= api.watches <= 6, api.watches
    assert all(1 <= count <= 3 for count in lists), lists


async def test_a_service_labelled_after_its_pods_are_ready_finds_their_slices(
    kube: k8s.ApiClient, kubeconfig: str, cold_service: Target
) -> None:
    """The slices arrived (and were dropped as no target's) before the Service became a target: the
    slices' follower lists again to pick them up."""
    namespace = cold_service.namespace
    core = k8s.CoreV1Api(kube)
    core.patch_namespaced_service(
        "iris-predictor", namespace, {"metadata": {"labels": {SCALE_TO_ZERO_LABEL: None}}}
    )
    k8s.AppsV1Api(kube).patch_namespaced_deployment_scale(
        "iris-predictor", namespace, {"spec": {"replicas": 1}}
    )
    async with activator_on_cluster(kubeconfig, namespaces=(namespace,)) as (side, _, _):
        slices = side.followers[-1]

        def pod_listed() -> bool:
            found = k8s.DiscoveryV1Api(kube).list_namespaced_endpoint_slice(
                namespace, label_selector="kubernetes.io/service-name=iris-predictor-pods"
            )
            return any(endpoint.conditions.ready for item in found.items for endpoint in item.endpoints or [])

        await until(_async(pod_listed), seconds=30)
        lists = slices.lists
        assert side.endpoints.ready(cold_service) == []
        core.patch_namespaced_service(
            "iris-predictor", namespace, {"metadata": {"labels": {SCALE_TO_ZERO_LABEL: "true"}}}
        )
        await until(_async(lambda: side.endpoints.ready(cold_service)), seconds=30)
        # A slice's own event may bring the pod in first; the relist must come all the same.
        await until(_async(lambda: slices.lists > lists))
