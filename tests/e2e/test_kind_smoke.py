"""The control-plane smoke scenarios, run again in kind (see conftest.py).

They are collected from tests/cluster/test_smoke.py as they are. Those whose pods must run take
their image from the `pod_image` fixture, which conftest.py points at the pause image every kind
node already holds (kwok never pulls, and its stand-in image is in no registry).
"""

from tests.cluster.test_smoke import (
    test_deployment_rolls_out_on_cpu_nodes,
    test_gpu_pod_with_toleration_lands_on_gpu_node,
    test_gpu_pod_without_toleration_stays_pending_with_reason,
    test_nodes_are_ready_cpu_and_gpu,
    test_owner_references_are_garbage_collected,
)

__all__ = [
    "test_deployment_rolls_out_on_cpu_nodes",
    "test_gpu_pod_with_toleration_lands_on_gpu_node",
    "test_gpu_pod_without_toleration_stays_pending_with_reason",
    "test_nodes_are_ready_cpu_and_gpu",
    "test_owner_references_are_garbage_collected",
]
