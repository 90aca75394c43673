"""The local control plane acts like a real cluster: scheduling, rollout, GPU taints, garbage collection."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tests.polling import eventually


def _spec(image: str, gpu: bool = False, tolerate: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    if gpu:
        container["resources"] = {"limits": {GPU_RESOURCE: "1"}}
    spec: dict[str, Any] = {"containers": [container]}
    if tolerate:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _pod(name: str, image: str, gpu: bool, tolerate: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": _spec(image, gpu, tolerate),
    }


def _node_labels(core: k8s.CoreV1Api, node: str) -> dict[str, str]:
    return core.read_node(node).metadata.labels or {}


def test_nodes_are_ready_cpu_and_gpu(kube: k8s.ApiClient) -> None:
    nodes = k8s.CoreV1Api(kube).list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    gpu = [n for n in ready if GPU_RESOURCE in (n.status.allocatable or {})]
    assert len(ready) - len(gpu) >= 2
    assert len(gpu) >= 2
    assert all(any(t.key == GPU_RESOURCE and t.effect == "NoSchedule" for t in n.spec.taints) for n in gpu)


def test_deployment_rolls_out_on_cpu_nodes(
    kube: k8s.ApiClient, namespace: str, pod_image: str, pod_start_timeout: float
) -> None:
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
                "template": {"metadata": {"labels": labels}, "spec": _spec(pod_image)},
            },
        },
    )

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("smoke", namespace).status
        return (
            any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
            and status.ready_replicas == 2
        )

    eventually(available, pod_start_timeout, what="Deployment smoke to be Available with 2 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=smoke").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert GPU_PRODUCT_LABEL not in _node_labels(core, pod.spec.node_name)


def test_gpu_pod_with_toleration_lands_on_gpu_node(
    kube: k8s.ApiClient, namespace: str, pod_image: str, pod_start_timeout: float
) -> None:
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pod("gpu", pod_image, gpu=True, tolerate=True))
    pod = eventually(
        lambda: (p := core.read_namespaced_pod("gpu", namespace)).status.phase == "Running" and p,
        pod_start_timeout,
        what="the GPU pod to run",
    )
    assert _node_labels(core, pod.spec.node_name)[GPU_PRODUCT_LABEL].startswith("NVIDIA-")


def test_gpu_pod_without_toleration_stays_pending_with_reason(
    kube: k8s.ApiClient, namespace: str, pod_image: str
) -> None:
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pod("no-toleration", pod_image, gpu=True, tolerate=False))

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("no-toleration", namespace)
        return next(
            (
                c
                for c in pod.status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        )

    condition = eventually(unschedulable, what="the scheduler to report Unschedulable")
    assert core.read_namespaced_pod("no-toleration", namespace).status.phase == "Pending"
    assert "untolerated taint" in condition.message
    assert f"Insufficient {GPU_RESOURCE}" in condition.message


def test_owner_references_are_garbage_collected(kube: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(kube)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        return "child" not in {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}

    eventually(child_gone, what="the child ConfigMap to be garbage-collected")
