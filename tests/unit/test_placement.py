"""Accelerator placement: classes give selectors and tolerations; CPU pods never tolerate GPU taints."""

from __future__ import annotations

import pytest

from kubeserve.api.common import ResourceRequirements
from kubeserve.config import OperatorConfig
from kubeserve.planning.placement import UnknownAcceleratorClass, plan_placement

CONFIG = OperatorConfig()
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def resources(**limits: str) -> ResourceRequirements:
    return ResourceRequirements.model_validate({"limits": limits})


def test_cpu_only_components_get_no_placement() -> None:
    placement = plan_placement(None, [resources(cpu="2", memory="4Gi")], CONFIG)
    assert not placement.uses_accelerator
    assert (placement.node_selector, placement.tolerations) == ({}, ())


def test_a_named_class_gives_its_product_selector_and_tolerations() -> None:
    placement = plan_placement("nvidia-h100", [resources(**{"nvidia.com/gpu": "2"})], CONFIG)
    assert placement.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert placement.tolerations == (GPU_TOLERATION,)
    assert placement.accelerator_resources == ("nvidia.com/gpu",)
    assert placement.added_limits == {}


def test_a_named_class_without_a_device_request_gets_one_device() -> None:
    placement = plan_placement("nvidia-a100", [resources(cpu="1")], CONFIG)
    assert placement.added_limits == {"nvidia.com/gpu": "1"}
    assert placement.uses_accelerator


def test_a_bare_gpu_request_tolerates_gpu_nodes_of_any_product() -> None:
    placement = plan_placement(None, [resources(**{"nvidia.com/gpu": "1"})], CONFIG)
    assert placement.node_selector == {}
    assert placement.tolerations == (GPU_TOLERATION,)


def test_a_zero_gpu_request_is_not_an_accelerator() -> None:
    assert not plan_placement(None, [resources(**{"nvidia.com/gpu": "0"})], CONFIG).uses_accelerator


def test_an_unknown_class_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownAcceleratorClass, match=r"nvidia-v100.*amd-mi300, nvidia-a100, nvidia-h100"):
        plan_placement("nvidia-v100", [None], CONFIG)
