"""Scale to zero on the real node, as plain functions: the chart's activator turned on, a service taken
to zero replicas, kube-proxy seen routing its ClusterIP to the activator, and a burst of concurrent cold
requests. The node suite (test_scale_to_zero.py) and `bench/scale_to_zero.py` both use them."""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import client as k8s

from tests.cluster.test_install import CHART, helm
from tests.polling import eventually

ACTIVATOR = "kubeserve-activator"
ACTIVATOR_SELECTOR = "app.kubernetes.io/name=kubeserve,app.kubernetes.io/component=activator"
ADMIN_PORT = 9090


def enable_scale_to_zero(kubeconfig: str, namespace: str, *values: str) -> None:
    """`helm upgrade` of the installed chart with scale to zero on and the activator (the image built
    here) installed; the running operator follows its ConfigMap, with no restart. Returns once the
    activator is Ready."""
    settings = ["config.scaleToZero.enabled=true", "activator.image.pullPolicy=Never", *values]
    upgrade = ["upgrade", "kubeserve", str(CHART), "--reuse-values", "--set", ",".join(settings)]
    helm(kubeconfig, namespace, *upgrade, "--wait", "--timeout", "180s")


def disable_scale_to_zero(kubeconfig: str, namespace: str) -> None:
    upgrade = ["upgrade", "kubeserve", str(CHART), "--reuse-values"]
    helm(kubeconfig, namespace, *upgrade, "--set", "config.scaleToZero.enabled=false", "--wait")


def activator_ip(kube: k8s.ApiClient, namespace: str) -> str:
    """The Ready activator pod's address (the chart's default is one replica)."""

    def ready() -> str | None:
        pods = k8s.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=ACTIVATOR_SELECTOR).items
        for pod in pods:
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                return str(pod.status.pod_ip)
        return None

    return eventually(ready, 60, "a Ready activator pod")


def activator_metric(address: str, line_prefix: str) -> float:
    """One sample of the activator's /metrics (0 when absent: a counter not yet incremented)."""
    text = httpx.get(f"http://{address}:{ADMIN_PORT}/metrics", timeout=5).text
    samples = [line for line in text.splitlines() if line.startswith(line_prefix + " ")]
    return float(samples[0].rsplit(" ", 1)[1]) if samples else 0.0


def wakes(address: str, namespace: str, service: str) -> float:
    return activator_metric(address, f'kubeserve_activator_wakes_total{{service="{namespace}/{service}"}}')


def scale_to_zero(kube: k8s.ApiClient, namespace: str, deployment: str) -> None:
    """What the idle scale-down does, by hand: the Deployment's scale to 0; returns once no pod is left."""
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    scale = apps.patch_namespaced_deployment_scale(deployment, namespace, {"spec": {"replicas": 0}})
    selector = scale.status.selector
    eventually(
        lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items,
        120,
        f"no pod of {deployment} left",
    )


def kube_proxy_routes(namespace: str, service: str, address: str) -> bool:
    """Whether kube-proxy's rules (iptables mode, on this host) send the Service to `address` alone."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    comment = f'"{namespace}/{service}:'
    targets = {
        line.rsplit("--to-destination ", 1)[1].rsplit(":", 1)[0]
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SEP-") and comment in line and "--to-destination" in line
    }
    return targets == {address}


def wait_routed_to(namespace: str, service: str, address: str, timeout: float = 60.0) -> None:
    eventually(
        lambda: kube_proxy_routes(namespace, service, address),
        timeout,
        f"kube-proxy routing {namespace}/{service} to {address} only",
    )


@dataclass(frozen=True)
class Answer:
    seconds: float
    """From the burst's start to this response."""
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def _burst(url: str, body: dict[str, Any], count: int, seconds: float) -> list[Answer]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=seconds, limits=limits) as client:
        started = time.perf_counter()

        async def one() -> Answer:
            response = await client.post(url, json=body)
            json_body = response.headers.get("content-type", "").startswith("application/json")
            parsed = response.json() if json_body else {}
            return Answer(time.perf_counter() - started, response.status_code, parsed, dict(response.headers))

        return list(await asyncio.gather(*(one() for _ in range(count))))


def burst(url: str, body: dict[str, Any], count: int, timeout: float = 120.0) -> list[Answer]:
    """`count` requests at once, each on its own connection: every answer, timed from the start."""
    return asyncio.run(_burst(url, body, count, timeout))
