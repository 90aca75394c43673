"""The simulated nodes kwok keeps Ready: plain CPU nodes and GPU nodes of two products.

GPU nodes carry what the NVIDIA device plugin and GPU feature discovery put on
real ones (the `nvidia.com/gpu` resource and product label) and the
`nvidia.com/gpu:NoSchedule` taint that GPU node pools are created with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class NodeShape:
    """A simulated node; the default is a large general-purpose cloud instance (96 vCPUs, 384 GiB,
    250 pods), so every example and a few hundred benchmark services fit on two of them."""

    name: str
    cpu: str = "96"
    memory: str = "384Gi"
    pods: str = "250"
    labels: dict[str, str] = field(default_factory=dict)
    extended: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()


def _gpu_node(name: str, product: str, gpus: int) -> NodeShape:
    return NodeShape(
        name=name,
        cpu="64",
        memory="512Gi",
        labels={
            GPU_PRODUCT_LABEL: product,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(gpus),
        },
        extended={GPU_RESOURCE: str(gpus)},
        taints=({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"},),
    )


DEFAULT_NODES = (
    NodeShape("kwok-cpu-0"),
    NodeShape("kwok-cpu-1"),
    _gpu_node("kwok-gpu-a100-0", "NVIDIA-A100-SXM4-80GB", 8),
    _gpu_node("kwok-gpu-a100-1", "NVIDIA-A100-SXM4-80GB", 8),
    _gpu_node("kwok-gpu-h100-0", "NVIDIA-H100-80GB-HBM3", 8),
)


def node_manifest(shape: NodeShape) -> dict[str, Any]:
    """A Node object as a kubelet would register it, marked for kwok to manage."""
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods, **shape.extended}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": shape.name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": shape.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
                **shape.labels,
            },
        },
        "spec": {"taints": list(shape.taints)},
        "status": {"allocatable": resources, "capacity": resources},
    }


def ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
