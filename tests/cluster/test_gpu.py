"""GPU placement by the real kube-scheduler on kwok nodes: two GPU products, plain CPU nodes.

The GPU nodes are tainted `nvidia.com/gpu=present:NoSchedule` as GPU node pools
are, so a pod lands on one only with the tolerations of an accelerator class,
and on the right product only with the class's node selector.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL
from kubeserve.planning.naming import LABEL_SERVICE
from tests.cluster.isvc import GROUP, VERSION, Isvcs
from tests.polling import eventually

A100, H100 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"
CPU_IMAGE = "ghcr.io/kubeserve/model-server:0.1.0"
GPU_IMAGE = f"{CPU_IMAGE}-gpu"


def onnx(
    name: str, replicas: int = 1, accelerator: str | None = None, gpus: int | None = None
) -> dict[str, Any]:
    model: dict[str, Any] = {"modelFormat": {"name": "onnx"}, "storageUri": "gs://models/resnet"}
    if accelerator:
        model["accelerator"] = accelerator
    if gpus:
        model["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"minReplicas": replicas, "model": model}},
    }


def placed(kube: k8s.ApiClient, namespace: str, service: str, count: int) -> list[tuple[str, str]]:
    """(node, image) of the service's pods, once `count` of them are scheduled."""
    core = k8s.CoreV1Api(kube)

    def probe() -> list[tuple[str, str]] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_SERVICE}={service}").items
        found = [(p.spec.node_name, p.spec.containers[0].image) for p in pods if p.spec.node_name]
        return found if len(found) == count else None

    return eventually(probe, what=f"{count} scheduled pods of {service}")


def products(kube: k8s.ApiClient) -> dict[str, str | None]:
    """Node name -> its GPU product (None for a CPU node)."""
    return {
        n.metadata.name: n.metadata.labels.get(GPU_PRODUCT_LABEL)
        for n in k8s.CoreV1Api(kube).list_node().items
    }


def test_accelerator_classes_land_on_their_product_with_the_gpu_image(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    for body in (onnx("a100", 3, "nvidia-a100"), onnx("h100", 2, "nvidia-h100"), onnx("bare", 2, gpus=1)):
        isvcs.apply(body)
    product = products(kube)
    for name, count, wanted in (("a100", 3, {A100}), ("h100", 2, {H100}), ("bare", 2, {A100, H100})):
        isvcs.wait_ready(name)
        pods = placed(kube, namespace, name, count)
        assert {product[node] for node, _ in pods} <= wanted, pods
        assert {image for _, image in pods} == {GPU_IMAGE}


def test_cpu_pods_never_land_on_gpu_nodes_and_keep_the_cpu_image(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(onnx("cpu", 6))
    isvcs.wait_ready("cpu")
    product = products(kube)
    pods = placed(kube, namespace, "cpu", 6)
    assert {product[node] for node, _ in pods} == {None}, pods
    assert {image for _, image in pods} == {CPU_IMAGE}


def test_a_request_no_node_can_satisfy_is_unschedulable_within_seconds(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(onnx("too-many", accelerator="nvidia-a100", gpus=16))
    isvcs.apply(onnx("no-such-nodes", accelerator="amd-mi300"))
    none_of_all = f"0/{len(products(kube))} nodes are available"  # the scheduler counts every node
    too_many = isvcs.wait_condition("too-many", "PredictorReady", "False", "Unschedulable", timeout=10)
    assert none_of_all in too_many["message"]
    assert "Insufficient nvidia.com/gpu" in too_many["message"]
    missing = isvcs.wait_condition("no-such-nodes", "PredictorReady", "False", "Unschedulable", timeout=10)
    assert none_of_all in missing["message"]
    assert "didn't match Pod's node affinity/selector" in missing["message"]
    ready = isvcs.condition("too-many", "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "Unschedulable")


def test_an_unknown_accelerator_class_is_a_clear_condition(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(onnx("tpu", accelerator="tpu-v5"))
    condition = isvcs.wait_condition("tpu", "PredictorReady", "False", "UnknownAcceleratorClass")
    assert "'tpu-v5' is not an accelerator class" in condition["message"]
    assert "nvidia-a100" in condition["message"]
    assert not k8s.AppsV1Api(kube).list_namespaced_deployment(namespace).items
