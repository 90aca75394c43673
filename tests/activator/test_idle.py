"""Groups and idle scale-down against the session's API server: waking one Service of an InferenceService
wakes every Deployment of its group; a group whose pods' counters stand still for its window goes to 0
together; a rising counter, a request in flight, or a pod that gives no reading keeps it up; a scale-down
that loses a race to someone else's change leaves that change alone.

kwok's Ready pods are reached on loopback (`LoopbackPodNetwork`): the predictor's at a real
kubeserve-server, the transformer's at a small page of metrics the test sets, as a custom transformer
serves its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from kubernetes import client as k8s

from kubeserve_activator.__main__ import parse_args
from kubeserve_activator.cluster import (
    DEPLOYMENT_ANNOTATION,
    IDLE_WINDOW_ANNOTATION,
    INFERENCE_SERVICE_LABEL,
    ClusterSide,
)
from kubeserve_activator.idling import NoSignal, idle_scaling, read_metrics
from kubeserve_activator.interfaces import Target
from kubeserve_activator.kube_api import KubeApi, from_kubeconfig
from kubeserve_activator.server import RunningActivator
from tests.activator.conftest import TEST_CONFIG, client, infer_body, metric, until
from tests.activator.test_cluster import (
    LoopbackPodNetwork,
    _async,
    activator_on_cluster,
    create_cold_service,
    create_deployment,
    replicas,
)
from tests.server.conftest import Server, Trained

WINDOW = 2  # seconds idle before a group goes to 0
INTERVAL = 0.25  # seconds between two reads of the pods' metrics
TRANSFORMER, PREDICTOR = "iris-transformer", "iris-predictor"
SCALE_DOWNS = "kubeserve_activator_idle_scale_downs_total"


class MetricsPage:
    """A pod's HTTP server on loopback whose /metrics the test sets: a page, or None for a 404."""

    def __init__(self, page: str | None) -> None:
        self.page = page
        self.port = 0

    async def _metrics(self, _: web.Request) -> web.Response:
        if self.page is None:
            return web.Response(status=404, text="404: Not Found")
        return web.Response(text=self.page, content_type="text/plain")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[MetricsPage]:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            await runner.cleanup()


def counted(requests: float, in_flight: float = 0) -> str:
    """A transformer's page as kubeserve-server's: the two families the idle scale-down reads."""
    return (
        "# TYPE kubeserve_requests counter\n"
        f'kubeserve_requests_total{{model="t",protocol="v2"}} {requests}\n'
        "# TYPE kubeserve_requests_in_flight gauge\n"
        f'kubeserve_requests_in_flight{{model="t",protocol="v2"}} {in_flight}\n'
    )


def create_group(kube: k8s.ApiClient, namespace: str, image: str, window: int = WINDOW) -> None:
    """An InferenceService `iris` with a transformer and a predictor, both at 0 replicas."""
    for name in (TRANSFORMER, PREDICTOR):
        create_cold_service(
            kube,
            namespace,
            image,
            name=name,
            labels={INFERENCE_SERVICE_LABEL: "iris"},
            annotations={IDLE_WINDOW_ANNOTATION: str(window)},
        )


@pytest.fixture
def group(kube: k8s.ApiClient, namespace: str, pod_image: str) -> Iterator[str]:
    create_group(kube, namespace, pod_image)
    yield namespace


def group_replicas(kube: k8s.ApiClient, namespace: str) -> tuple[int, int]:
    return replicas(kube, namespace, TRANSFORMER), replicas(kube, namespace, PREDICTOR)


@contextlib.asynccontextmanager
async def idle_activator(
    kubeconfig: str, namespace: str, ports: Mapping[str, int], api: KubeApi | None = None, **settings: Any
) -> AsyncIterator[tuple[ClusterSide, RunningActivator]]:
    """The activator with its idle scale-down, following one namespace; kwok's pods on loopback."""
    network = functools.partial(LoopbackPodNetwork, backend=ports)
    config = replace(TEST_CONFIG, scrape_interval_seconds=INTERVAL)
    async with (
        activator_on_cluster(kubeconfig, api=api, namespaces=(namespace,), network=network, **settings) as (
            side,
            _,
            running,
        ),
        idle_scaling(config, side, running, pods=network(side.endpoints)),
    ):
        yield side, running


async def woken(side: ClusterSide, namespace: str) -> None:
    """Wake the group through its transformer; return once both its kwok pods are Ready and listed."""
    await side.waker.wake(Target(namespace, TRANSFORMER))
    for name in (TRANSFORMER, PREDICTOR):
        await until(_ready(side, Target(namespace, name)), seconds=30)


def _ready(side: ClusterSide, target: Target) -> Any:
    return _async(lambda: side.endpoints.ready(target))


async def at_zero(kube: k8s.ApiClient, namespace: str, seconds: float) -> float:
    """Seconds until both Deployments of the group are at 0 (fails past `seconds`)."""
    started = time.monotonic()

    async def zero() -> bool:
        return await asyncio.to_thread(group_replicas, kube, namespace) == (0, 0)

    await until(zero, seconds=seconds)
    return time.monotonic() - started


async def test_waking_one_service_wakes_every_deployment_of_its_inference_service_only(
    kube: k8s.ApiClient, kubeconfig: str, group: str, pod_image: str
) -> None:
    namespace = group
    # The predictor has a canary track: its annotation names both Deployments.
    create_deployment(kube, namespace, pod_image, f"{PREDICTOR}-canary", {"app": f"{PREDICTOR}-canary"})
    k8s.CoreV1Api(kube).patch_namespaced_service(
        PREDICTOR,
        namespace,
        {"metadata": {"annotations": {DEPLOYMENT_ANNOTATION: f"{PREDICTOR}, {PREDICTOR}-canary"}}},
    )
    create_cold_service(
        kube, namespace, pod_image, name="other-predictor", labels={INFERENCE_SERVICE_LABEL: "other"}
    )
    async with activator_on_cluster(kubeconfig, namespaces=(namespace,)) as (side, _, _):
        await until(_async(lambda: len(side.targets.group(Target(namespace, PREDICTOR))) == 2))
        route = side.targets.route(Target(namespace, PREDICTOR))
        assert route is not None and route.deployments == (PREDICTOR, f"{PREDICTOR}-canary")
        # Two cold services of the group at once: one pass over its three Deployments.
        await asyncio.gather(
            side.waker.wake(Target(namespace, TRANSFORMER)), side.waker.wake(Target(namespace, PREDICTOR))
        )
        assert side.waker.patches == 3
    names = (TRANSFORMER, PREDICTOR, f"{PREDICTOR}-canary", "other-predictor")
    assert [replicas(kube, namespace, name) for name in names] == [1, 1, 1, 0]


async def test_an_idle_transformer_and_predictor_go_to_zero_together_after_their_window(
    kube: k8s.ApiClient, kubeconfig: str, group: str, iris_backend: Server, sklearn_iris: Trained
) -> None:
    """A cold request to the transformer wakes both; once it is answered, nothing is used: both go to 0
    no sooner than the window, and soon after it."""
    namespace = group
    ports = {TRANSFORMER: iris_backend.http_port, PREDICTOR: iris_backend.http_port}
    async with (
        idle_activator(kubeconfig, namespace, ports) as (side, running),
        client(running, host=f"{TRANSFORMER}.{namespace}") as http,
    ):
        response = await http.post("/v2/models/iris/infer", json=infer_body(sklearn_iris.features[0]))
        assert response.status_code == 200, response.text
        answered = time.monotonic()
        assert group_replicas(kube, namespace) == (1, 1)
        for name in (TRANSFORMER, PREDICTOR):
            await until(_ready(side, Target(namespace, name)), seconds=30)
        await at_zero(kube, namespace, seconds=WINDOW + 15)
        to_zero = time.monotonic() - answered
        assert to_zero >= WINDOW, f"scaled down {to_zero:.2f} s after the last request"
        for name in (TRANSFORMER, PREDICTOR):
            assert await metric(running, SCALE_DOWNS, service=f"{namespace}/{name}") == 1
        print(f"\nlast answer -> both Deployments at 0: {to_zero:.2f} s (window {WINDOW} s)")


async def test_use_keeps_the_group_up_a_rising_counter_or_a_request_in_flight(
    kube: k8s.ApiClient, kubeconfig: str, group: str, iris_backend: Server, sklearn_iris: Trained
) -> None:
    """Warm traffic to the predictor (straight to its pod, bypassing the activator) keeps the
    transformer, whose own counter stands still, up too; then a request in flight at the transformer
    does; once both stop, the group goes to 0."""
    namespace = group
    async with MetricsPage(counted(5)).serving() as transformer:
        ports = {TRANSFORMER: transformer.port, PREDICTOR: iris_backend.http_port}
        async with idle_activator(kubeconfig, namespace, ports) as (side, running):
            await woken(side, namespace)
            body = infer_body(sklearn_iris.features[0])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{iris_backend.http_port}") as pod:
                for _ in range(int(2 * WINDOW / 0.3)):
                    assert (await pod.post("/v2/models/iris/infer", json=body)).status_code == 200
                    await asyncio.sleep(0.3)
            assert group_replicas(kube, namespace) == (1, 1)
            transformer.page = counted(5, in_flight=1)
            await asyncio.sleep(2 * WINDOW)
            assert group_replicas(kube, namespace) == (1, 1)
            assert await metric(running, SCALE_DOWNS, service=f"{namespace}/{TRANSFORMER}") == 0
            transformer.page = counted(5)
            await at_zero(kube, namespace, seconds=WINDOW + 15)


async def test_a_request_the_activator_holds_keeps_the_group_up(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, pod_image: str
) -> None:
    """The transformer is Ready and idle; a request for the predictor, whose pod never gets Ready, is
    held: it shows in no pod's counter, yet the group stays up while it waits, and goes down after."""
    for name, listed in ((TRANSFORMER, True), (PREDICTOR, False)):
        create_cold_service(
            kube,
            namespace,
            pod_image,
            name=name,
            pod_selector=listed,
            labels={INFERENCE_SERVICE_LABEL: "iris"},
            annotations={IDLE_WINDOW_ANNOTATION: str(WINDOW)},
        )
    hold = 2 * WINDOW + 1
    async with MetricsPage(counted(0)).serving() as transformer:
        ports = {TRANSFORMER: transformer.port, PREDICTOR: 0}
        async with (
            idle_activator(kubeconfig, namespace, ports, hold_seconds=hold) as (side, running),
            client(running, host=f"{PREDICTOR}.{namespace}") as http,
        ):
            await side.waker.wake(Target(namespace, TRANSFORMER))
            await until(_ready(side, Target(namespace, TRANSFORMER)), seconds=30)
            response = await http.get("/v2/health/ready")
            answered = time.monotonic()
            assert response.status_code == 503, "held to its deadline: the predictor never got Ready"
            assert group_replicas(kube, namespace) == (1, 1)
            await at_zero(kube, namespace, seconds=WINDOW + 15)
            assert time.monotonic() - answered >= WINDOW


@pytest.mark.parametrize(
    "page",
    [None, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n"],
    ids=["404", "no-counter"],
)
async def test_a_pod_that_gives_no_reading_keeps_its_group_up_and_is_said_once(
    kube: k8s.ApiClient,
    kubeconfig: str,
    group: str,
    iris_backend: Server,
    page: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No /metrics (404), or a page without kubeserve_requests_total: never scaled down blindly."""
    namespace = group
    caplog.set_level(logging.WARNING, logger="kubeserve_activator")
    async with MetricsPage(page).serving() as transformer:
        ports = {TRANSFORMER: transformer.port, PREDICTOR: iris_backend.http_port}
        async with idle_activator(kubeconfig, namespace, ports) as (side, _):
            await woken(side, namespace)
            await asyncio.sleep(2 * WINDOW + 1)
            assert group_replicas(kube, namespace) == (1, 1)
            said = [r.getMessage() for r in caplog.records if "gives no idleness" in r.getMessage()]
            assert len(said) == 1 and f"{namespace}/{TRANSFORMER}" in said[0], said
            # The same group with a reading from every pod: down it goes, so the missing one kept it up.
            transformer.page = counted(0)
            await at_zero(kube, namespace, seconds=WINDOW + 15)


class ScaledMeanwhile(KubeApi):
    """Our client against the real API server, except that just before the first patch to 0 replicas
    someone (a human, say) scales that Deployment to 2 through the API: the guarded patch then loses."""

    def __init__(self, kubeconfig: str, kube: k8s.ApiClient) -> None:
        super().__init__(from_kubeconfig(Path(kubeconfig)))
        self._kube = kube
        self.raced: str | None = None

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body["spec"]["replicas"] == 0 and self.raced is None:
            namespace, deployment = path.split("/")[5], path.split("/")[7]
            await asyncio.to_thread(
                k8s.AppsV1Api(self._kube).patch_namespaced_deployment_scale,
                deployment,
                namespace,
                {"spec": {"replicas": 2}},
            )
            self.raced = deployment
        return await super().merge_patch(path, body)


async def test_a_scale_down_that_loses_a_race_leaves_the_change_and_waits_a_fresh_window(
    kube: k8s.ApiClient, kubeconfig: str, group: str, iris_backend: Server
) -> None:
    namespace = group
    api = ScaledMeanwhile(kubeconfig, kube)
    ports = {TRANSFORMER: iris_backend.http_port, PREDICTOR: iris_backend.http_port}
    async with idle_activator(kubeconfig, namespace, ports, api=api) as (side, running):
        await woken(side, namespace)
        await until(_async(lambda: api.raced is not None), seconds=WINDOW + 15)
        raced = time.monotonic()
        await asyncio.sleep(0.5)
        expected = (
            {TRANSFORMER: 2, PREDICTOR: 1} if api.raced == TRANSFORMER else {TRANSFORMER: 1, PREDICTOR: 2}
        )
        assert dict(zip((TRANSFORMER, PREDICTOR), group_replicas(kube, namespace), strict=True)) == expected
        assert await metric(running, SCALE_DOWNS, service=f"{namespace}/{TRANSFORMER}") == 0
        # Still idle: after a whole fresh window, the group (the human's 2 replicas with it) goes to 0.
        await at_zero(kube, namespace, seconds=WINDOW + 15)
        assert time.monotonic() - raced >= WINDOW


async def test_the_model_servers_counter_is_read_as_it_rises(
    iris_backend: Server, sklearn_iris: Trained
) -> None:
    """kubeserve-server's own /metrics, over HTTP: the reading the idle scale-down compares."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{iris_backend.http_port}") as pod:
        before = read_metrics((await pod.get("/metrics")).text)
        for row in sklearn_iris.features[:3]:
            assert (await pod.post("/v2/models/iris/infer", json=infer_body(row))).status_code == 200
        after = read_metrics((await pod.get("/metrics")).text)
    assert after.requests == before.requests + 3
    assert after.in_flight == 0


def test_the_scrape_interval_is_an_option_of_the_command_line() -> None:
    config, _ = parse_args(["--scrape-interval-seconds", "2.5"])
    assert config.scrape_interval_seconds == 2.5
    assert parse_args([])[0].scrape_interval_seconds == 10
    with pytest.raises(SystemExit):
        parse_args(["--scrape-interval-seconds", "0"])


@pytest.mark.parametrize(
    ("page", "reading"),
    [
        (counted(7, in_flight=2) + counted(3).replace('"t"', '"u"'), (10.0, 2.0)),
        ("# TYPE kubeserve_requests counter\n", (0.0, 0.0)),  # declared, nothing counted yet
    ],
)
def test_a_page_reads_as_the_sums_over_label_sets(page: str, reading: tuple[float, float]) -> None:
    found = read_metrics(page)
    assert (found.requests, found.in_flight) == reading


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ("kubeserve_requests_in_flight 0\n", "no kubeserve_requests_total"),
        ("kubeserve_requests_total one\n", "unreadable metrics"),
    ],
)
def test_a_page_without_a_readable_counter_is_no_signal(page: str, reason: str) -> None:
    with pytest.raises(NoSignal, match=reason):
        read_metrics(page)
