"""Scale to zero on the real node, timed: cold starts through the chart's activator, where their time
goes, the idle scale-down, and the activator's memory.

1. The control plane with the real node, the images built here (cached on the node: imported, never
   pulled), the chart with `config.scaleToZero.enabled` and its activator; an iris InferenceService
   with minReplicas 0 whose model is in the S3 store on the node.
2. Per round: iris taken to zero replicas (its Deployment's scale, by hand) and its ClusterIP seen
   routed to the activator; then N concurrent v1 requests through the ClusterIP. Every answer must be
   200 and the model's own, with one wake. Each request's time to its response, and the pod's steps as
   watches see them (ms resolution; the API's own timestamps are whole seconds): wake (the Deployment
   asks for 1), pod created, scheduled, init container running (sandbox and container start), init
   container done (the model download), server running (its container start), pod Ready (model load
   and the kubelet's 1 s readiness probe), a Ready address in the pods Service's slice, first answer
   (which may come before the kubelet's Ready: the activator asks the starting pod's readiness itself).
3. Idle to zero: one request, then the time until the activator scales iris to 0 (its window, from the
   `serving.kubeserve.io/scale-to-zero-window` annotation, plus at most 30 s is the goal).
4. The activator's resident memory (its container's processes on this host) with iris alone, then with
   100 scale-to-zero Services and their pods Services.

Not part of `make test`; needs what the node suite needs (root, containerd, buildah; `kubeserve dev build`):

    .venv/bin/python bench/scale_to_zero.py [--rounds 5] [--requests 50] [--window 30]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_model_server import rss_mib
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from real_node import until
from servers.activator_process import SERVICES
from urllib3.exceptions import ProtocolError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeserve.devcluster import images
from kubeserve.devcluster.cluster import LocalControlPlane
from kubeserve.devcluster.real_node import RealNode
from tests.cluster.isvc import Isvcs
from tests.node.cold_start import (
    ACTIVATOR_SELECTOR,
    activator_ip,
    burst,
    enable_scale_to_zero,
    scale_to_zero,
    wait_routed_to,
    wakes,
)
from tests.node.workloads import (
    credentialed_namespace,
    install_chart,
    running_model_store,
    served,
    upload_models,
)

NAME = "iris"
PREDICTOR = f"{NAME}-predictor"
STEPS = ("wake", "created", "scheduled", "init running", "init done", "server running", "Ready", "routed")


class Timeline:
    """When each step of a cold start was first seen, by watches of the Deployment, the pods and the pods
    Service's slices (`time.monotonic()`); `since(start)` gives seconds from the burst's start."""

    def __init__(self, kube: k8s.ApiClient, namespace: str, selector: str) -> None:
        self.seen: dict[str, float] = {}
        self._watches: list[watch.Watch] = []
        self._threads: list[threading.Thread] = []
        apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
        discovery = k8s.DiscoveryV1Api(kube)
        self._follow(
            apps.list_namespaced_deployment, namespace, f"metadata.name={PREDICTOR}", self._deployment
        )
        self._follow(core.list_namespaced_pod, namespace, None, self._pod, label_selector=selector)
        pods_slices = f"kubernetes.io/service-name={PREDICTOR}-pods"
        self._follow(
            discovery.list_namespaced_endpoint_slice, namespace, None, self._slice, label_selector=pods_slices
        )

    def _follow(
        self,
        lister: Callable[..., Any],
        namespace: str,
        field: str | None,
        on: Callable[[Any], None],
        **kw: str,
    ) -> None:
        stream = watch.Watch()
        listed = lister(namespace, field_selector=field, **kw)
        version = listed.metadata.resource_version

        def run() -> None:
            events = stream.stream(lister, namespace, field_selector=field, resource_version=version, **kw)
            try:
                for event in events:
                    on(event["object"])
            except ProtocolError:
                return  # a stopped watch's connection, ended when the cluster goes down

        self._watches.append(stream)
        self._threads.append(threading.Thread(target=run, daemon=True))
        self._threads[-1].start()

    def _mark(self, step: str) -> None:
        self.seen.setdefault(step, time.monotonic())

    def _deployment(self, deployment: Any) -> None:
        if deployment.spec.replicas:
            self._mark("wake")

    def _pod(self, pod: Any) -> None:
        if pod.metadata.deletion_timestamp:
            return
        self._mark("created")
        if pod.spec.node_name:
            self._mark("scheduled")
        inits = pod.status.init_container_statuses or []
        if any(s.state.running or s.state.terminated for s in inits):
            self._mark("init running")
        if inits and all(s.state.terminated and s.state.terminated.exit_code == 0 for s in inits):
            self._mark("init done")
        if any(s.state.running for s in pod.status.container_statuses or []):
            self._mark("server running")
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
            self._mark("Ready")

    def _slice(self, endpoint_slice: Any) -> None:
        if any(e.conditions and e.conditions.ready for e in endpoint_slice.endpoints or []):
            self._mark("routed")

    def stop(self) -> None:
        for stream in self._watches:
            stream.stop()

    def since(self, start: float) -> dict[str, float]:
        return {step: self.seen[step] - start for step in STEPS if step in self.seen}


@contextmanager
def timeline(kube: k8s.ApiClient, namespace: str, selector: str) -> Iterator[Timeline]:
    followed = Timeline(kube, namespace, selector)
    try:
        yield followed
    finally:
        followed.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cold_round(
    kube: k8s.ApiClient,
    isvcs: Isvcs,
    activator: str,
    url: str,
    body: dict[str, Any],
    expected: list[int],
    n: int,
) -> tuple[list[float], dict[str, float]]:
    """One cold start under `n` concurrent requests: their times, and the steps' times from the start."""
    namespace = isvcs.namespace
    scale_to_zero(kube, namespace, PREDICTOR)
    isvcs.wait_condition(NAME, "Ready", "True", reason="ScaledToZero", timeout=60)
    wait_routed_to(namespace, PREDICTOR, activator)
    woken = wakes(activator, namespace, PREDICTOR)
    with timeline(kube, namespace, f"serving.kubeserve.io/inferenceservice={NAME}") as steps:
        started = time.monotonic()
        answers = burst(url, body, n)
        first = started + min(answer.seconds for answer in answers)
        until(lambda: "routed" in steps.seen, timeout=10)
    wrong = [a for a in answers if a.status != 200 or a.body.get("predictions") != expected]
    if wrong:
        raise AssertionError(f"{len(wrong)} of {n} cold requests failed: {wrong[0]}")
    if wakes(activator, namespace, PREDICTOR) - woken != 1:
        raise AssertionError("not exactly one wake")
    return [a.seconds for a in answers], {**steps.since(started), "first answer": first - started}


def activator_rss(kube: k8s.ApiClient, namespace: str) -> float:
    """The activator container's resident memory: its processes on this host, found by container id in
    their cgroup."""
    [pod] = k8s.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=ACTIVATOR_SELECTOR).items
    container = pod.status.container_statuses[0].container_id.split("://", 1)[1]
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            if container in cgroup.read_text():
                return rss_mib(int(cgroup.parent.name))
        except OSError:
            continue
    raise LookupError(f"no process of container {container} on this host")


def idle_services(core: k8s.CoreV1Api, namespace: str, count: int) -> None:
    """`count` scale-to-zero Services as the operator writes them, each with its headless pods Service
    (Kubernetes makes its slice): what the activator follows per service."""
    for index in range(count):
        name = f"idle-{index}"
        ports = [{"name": "http", "port": 80, "targetPort": 8080}]
        labels = {"serving.kubeserve.io/scale-to-zero": "true", "serving.kubeserve.io/inferenceservice": name}
        annotations = {
            "serving.kubeserve.io/deployment": f"{name}-predictor",
            "serving.kubeserve.io/pods-service": f"{name}-pods",
            "serving.kubeserve.io/idle-window-seconds": "300",
        }
        core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": name, "labels": labels, "annotations": annotations},
                "spec": {"ports": ports},
            },
        )
        pods = {"clusterIP": "None", "selector": {"idle": name}, "ports": ports}
        core.create_namespaced_service(namespace, {"metadata": {"name": f"{name}-pods"}, "spec": pods})


def report(times: list[list[float]], steps: list[dict[str, float]], window: int, idle: float | None) -> None:
    every = [t for burst_times in times for t in burst_times]
    firsts = [min(burst_times) for burst_times in times]
    print(
        f"time to response, {len(every)} cold requests over {len(times)} rounds:"
        f" p50 {percentile(every, 0.5):.2f} s, p95 {percentile(every, 0.95):.2f} s, max {max(every):.2f} s;"
        f" first answer per round: median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s;"
        " 0 errors, one wake per round"
    )
    print("where the time goes (median over rounds, seconds from the burst's start; step = since the last):")
    medians = {
        step: statistics.median(values)
        for step in (*STEPS, "first answer")
        if (values := [s[step] for s in steps if step in s])
    }
    previous = 0.0
    for step, at in sorted(medians.items(), key=lambda item: item[1]):  # the first answer may beat Ready
        print(f"  {step:<15} +{at:6.2f} s  (step {at - previous:5.2f} s)")
        previous = at
    if idle is not None:
        print(f"idle to zero: {idle:.1f} s after the last answer (window {window} s, goal < {window + 30} s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--window", type=int, default=30, help="iris's idle window, seconds")
    parser.add_argument("--cpu-limit", help="iris's CPU limit, a quantity (default: its runtime's, 1 CPU)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    built = images.ensure_images()
    with tempfile.TemporaryDirectory(prefix="bench-scale-to-zero-") as directory:
        plane = LocalControlPlane(Path(directory))
        state = plane.up(timeout=180.0, real=True)
        try:
            RealNode(plane.directory, plane.logs).import_images([image.archive for image in built])
            operator_namespace = install_chart(state.kubeconfig)
            kube = k8s_config.new_client_from_config(state.kubeconfig)
            enable_scale_to_zero(state.kubeconfig, operator_namespace)
            run(kube, operator_namespace, args)
        finally:
            plane.down()


def run(kube: k8s.ApiClient, operator_namespace: str, args: argparse.Namespace) -> None:
    core, apps = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube)
    activator = activator_ip(kube, operator_namespace)
    with running_model_store() as store, credentialed_namespace(kube, store) as namespace:
        models = upload_models(store)
        body, expected = {"instances": models.inputs}, models.sklearn_expected
        isvcs = Isvcs(kube, namespace)
        iris = served(NAME, "sklearn", "s3://models/sklearn/iris", minReplicas=0, maxReplicas=1)
        if args.cpu_limit:
            iris["spec"]["predictor"]["model"]["resources"] = {"limits": {"cpu": args.cpu_limit}}
        iris["metadata"]["annotations"] = {"serving.kubeserve.io/scale-to-zero-window": str(args.window)}
        isvcs.apply(iris)
        isvcs.wait_ready(NAME, timeout=180)
        address = core.read_namespaced_service(PREDICTOR, namespace).spec.cluster_ip
        url = f"http://{address}/v1/models/{NAME}:predict"
        memory_one = activator_rss(kube, operator_namespace)
        times, steps = [], []
        for round_ in range(args.rounds):
            seconds, seen = cold_round(kube, isvcs, activator, url, body, expected, args.requests)
            times.append(seconds)
            steps.append(seen)
            print(
                f"  round {round_ + 1}: first {min(seconds):.2f} s, p95 {percentile(seconds, 0.95):.2f} s, "
                + ", ".join(f"{step} +{at:.2f}" for step, at in seen.items()),
                flush=True,
            )
        [answer] = burst(url, body, 1)
        answered = time.monotonic()
        if answer.status != 200:
            raise AssertionError(f"warm request failed: {answer}")

        def at_zero() -> bool:
            return not apps.read_namespaced_deployment_scale(PREDICTOR, namespace).spec.replicas

        idle: float | None
        try:
            until(at_zero, timeout=args.window + 120)
            idle = time.monotonic() - answered
        except TimeoutError:
            idle = None
            print(f"idle to zero: iris still up {args.window + 120} s after its last answer")
        idle_services(core, namespace, SERVICES - 1)
        time.sleep(10)  # the activator's watches take the new Services and slices in
        memory_many = activator_rss(kube, operator_namespace)
        report(times, steps, args.window, idle)
        print(f"activator RSS: {memory_one:.1f} MiB with 1 service, {memory_many:.1f} MiB with {SERVICES}")


if __name__ == "__main__":
    main()
