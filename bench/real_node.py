"""The real node, timed: the cluster coming up, the images, and a model from `kubectl apply` to its
first correct prediction, against the limit of the same pod and Service with no operator in the way.

1. `ensure_images` on an unchanged tree (the cached image build);
2. the control plane with the real node, from nothing to `real-0` Ready, kube-proxy synced and
   CoreDNS ready (what `kubeserve dev up --real-node` waits for);
3. the chart installed with the images (the operator's pod Ready on the node);
4. per round: an iris InferenceService from the S3 store, timed from its apply to the first correct
   v1 prediction through its ClusterIP, with the pod's own phases (created -> init container done ->
   Ready) read off the API as they happen; then, as the limit, the Deployment the operator made,
   applied directly under another name with its own Service: the same init container, download,
   server and probe, with no InferenceService, operator or status in between.

Prints each figure and the ratio of the median apply-to-prediction time to the limit's. Not part of
`make test`; needs what the node suite needs (root, containerd, buildah; `kubeserve dev build`):

    .venv/bin/python bench/real_node.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes import config as k8s_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeserve.devcluster import images
from kubeserve.devcluster.cluster import LocalControlPlane
from kubeserve.devcluster.real_node import RealNode
from tests.cluster.isvc import Isvcs
from tests.node.workloads import (
    credentialed_namespace,
    install_chart,
    running_model_store,
    served,
    upload_models,
)

POLL = 0.05


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def until(probe: Callable[[], bool], timeout: float = 180.0) -> float:
    """Seconds until `probe` holds, polled every 50 ms."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(POLL)
    return time.monotonic() - started


def predicts(url: str, body: dict[str, Any], expected: list[int]) -> bool:
    try:
        response = httpx.post(url, json=body, timeout=2)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json().get("predictions") == expected


class PodPhases:
    """When the service's pod appeared, finished its init container and turned Ready, as polled."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str, selector: str) -> None:
        self.core, self.namespace, self.selector = core, namespace, selector
        self.seen: dict[str, float] = {}

    def observe(self) -> None:
        now = time.monotonic()
        for pod in self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items:
            self.seen.setdefault("created", now)
            inits = pod.status.init_container_statuses or []
            if inits and all(s.state.terminated is not None for s in inits):
                self.seen.setdefault("initialized", now)
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                self.seen.setdefault("ready", now)


def first_prediction(url: str, body: dict[str, Any], expected: list[int], phases: PodPhases) -> float:
    def probe() -> bool:
        phases.observe()
        return predicts(url, body, expected)

    return until(probe)


def service_ip(core: k8s.CoreV1Api, namespace: str, name: str) -> str | None:
    try:
        ip: str = core.read_namespaced_service(name, namespace).spec.cluster_ip
    except k8s.ApiException:
        return None
    return ip


def limit_objects(
    deployment: dict[str, Any], service: dict[str, Any], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's Deployment and Service under `name`, owned by nobody and selecting their own pods."""
    labels = {"bench": name}
    plain = copy.deepcopy(deployment)
    plain["metadata"] = {"name": name, "labels": labels}
    plain["spec"]["selector"] = {"matchLabels": labels}
    plain["spec"]["template"]["metadata"]["labels"] = labels
    plain.pop("status", None)
    routed = copy.deepcopy(service)
    routed["metadata"] = {"name": name}
    routed["spec"] = {"selector": labels, "ports": service["spec"]["ports"]}
    return plain, routed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    images.ensure_images()
    cached_build = timed(images.ensure_images)
    print(f"cached image build (ensure_images, unchanged tree): {cached_build:.2f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-real-node-") as directory:
        plane = LocalControlPlane(Path(directory))
        started = time.monotonic()
        state = plane.up(timeout=180.0, real=True)
        up = time.monotonic() - started
        print(f"control plane + real node Ready, kube-proxy synced, CoreDNS ready: {up:.1f} s", flush=True)
        try:
            node = RealNode(plane.directory, plane.logs)
            archives = [image.archive for image in images.ensure_images()]
            print(f"images imported into the node: {timed(lambda: node.import_images(archives)):.1f} s")
            print(f"helm install, operator Ready: {timed(lambda: install_chart(state.kubeconfig)):.1f} s")
            kube = k8s_config.new_client_from_config(state.kubeconfig)
            run_rounds(kube, args.rounds)
        finally:
            plane.down()


def run_rounds(kube: k8s.ApiClient, rounds: int) -> None:
    core, apps = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube)
    with running_model_store() as store, credentialed_namespace(kube, store) as namespace:
        models = upload_models(store)
        body, expected = {"instances": models.inputs}, models.sklearn_expected
        isvcs = Isvcs(kube, namespace)
        ours, limits = [], []
        for round_ in range(rounds):
            name = f"iris-{round_}"
            started = time.monotonic()
            isvcs.apply(served(name, "sklearn", "s3://models/sklearn/iris"))
            predictor = f"{name}-predictor"
            until(lambda: service_ip(core, namespace, predictor) is not None)  # noqa: B023 (called at once)
            ip = service_ip(core, namespace, predictor)
            phases = PodPhases(core, namespace, f"serving.kubeserve.io/inferenceservice={name}")
            url = f"http://{ip}/v1/models/{name}:predict"
            ours.append(time.monotonic() - started + first_prediction(url, body, expected, phases))
            report("InferenceService", ours[-1], phases.seen, started)

            limit = f"limit-{round_}"
            plain, routed = limit_objects(
                as_sent(kube, apps.read_namespaced_deployment(f"{name}-predictor", namespace)),
                as_sent(kube, core.read_namespaced_service(f"{name}-predictor", namespace)),
                limit,
            )
            started = time.monotonic()
            apps.create_namespaced_deployment(namespace, plain)
            ip = core.create_namespaced_service(namespace, routed).spec.cluster_ip
            phases = PodPhases(core, namespace, f"bench={limit}")
            url = f"http://{ip}/v1/models/{name}:predict"
            limits.append(time.monotonic() - started + first_prediction(url, body, expected, phases))
            report("limit (Deployment + Service)", limits[-1], phases.seen, started)
            isvcs.delete(name)
            apps.delete_namespaced_deployment(limit, namespace)
            core.delete_namespaced_service(limit, namespace)
        ours_median, limit_median = statistics.median(ours), statistics.median(limits)
        print(
            f"apply to first correct prediction, median of {rounds}: InferenceService {ours_median:.2f} s, "
            f"limit {limit_median:.2f} s, ratio x{ours_median / limit_median:.2f}"
        )


def as_sent(kube: k8s.ApiClient, obj: object) -> dict[str, Any]:
    """An object read with the client, as the API serves it (camelCase), to send back."""
    result: dict[str, Any] = kube.sanitize_for_serialization(obj)
    return result


def report(what: str, total: float, seen: dict[str, float], started: float) -> None:
    phases = ", ".join(f"{phase} +{at - started:.2f} s" for phase, at in seen.items())
    print(f"  {what}: first correct prediction {total:.2f} s after apply ({phases})", flush=True)


if __name__ == "__main__":
    main()
