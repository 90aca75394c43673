"""The control-plane smoke scenarios, run again in kind (see conftest.py).

Those that need no container to run are collected from tests/cluster/test_smoke.py as they are.
The two that wait for pods to run use an image no registry has there (kwok never pulls one);
in kind a container really starts, so their kind versions here run the pause image that every
kind node already holds (found in the node's image list, never pulled), with the same checks.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tests.cluster.test_smoke import (
    test_gpu_pod_without_toleration_stays_pending_with_reason,
    test_nodes_are_ready_cpu_and_gpu,
    test_owner_references_are_garbage_collected,
)
from tests.polling import eventually

__all__ = [
    "test_deployment_rolls_out_on_cpu_nodes",
    "test_gpu_pod_with_toleration_lands_on_gpu_node",
    "test_gpu_pod_without_toleration_stays_pending_with_reason",
    "test_nodes_are_ready_cpu_and_gpu",
    "test_owner_references_are_garbage_collected",
]


def _preloaded_image(core: k8s.CoreV1Api) -> str:
    """The pause image, which the kind node image ships for pod sandboxes: present on every node."""
    names = {
        name
        for node in core.list_node().items
        for image in node.status.images or []
        for name in image.names or []
    }
    pause = sorted(n for n in names if "/pause:" in n and "@" not in n)
    assert pause, f"no pause image in the nodes' image lists: {sorted(names)}"
    return pause[-1]


def _spec(image: str, gpu: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    spec: dict[str, Any] = {"containers": [container]}
    if gpu:
        container["resources"] = {"limits": {GPU_RESOURCE: "1"}}
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _node_labels(core: k8s.CoreV1Api, node: str) -> dict[str, str]:
    labels: dict[str, str] = core.read_node(node).metadata.labels or {}
    return labels


def test_deployment_rolls_out_on_cpu_nodes(kube: k8s.ApiClient, namespace: str) -> None:
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "smoke"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": _spec(_preloaded_image(core))},
            },
        },
    )

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("smoke", namespace).status
        return (
            any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
            and status.ready_replicas == 2
        )

    eventually(available, timeout=120, what="Deployment smoke to be Available with 2 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=smoke").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert GPU_PRODUCT_LABEL not in _node_labels(core, pod.spec.node_name)


def test_gpu_pod_with_toleration_lands_on_gpu_node(kube: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(kube)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu"}}
    core.create_namespaced_pod(namespace, body | {"spec": _spec(_preloaded_image(core), gpu=True)})
    pod = eventually(
        lambda: (p := core.read_namespaced_pod("gpu", namespace)).status.phase == "Running" and p,
        timeout=120,
        what="the GPU pod to run",
    )
    assert _node_labels(core, pod.spec.node_name)[GPU_PRODUCT_LABEL].startswith("NVIDIA-")
