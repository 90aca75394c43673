"""The same scenarios in a kind cluster, for machines with a Docker engine.

Overrides the root `kubeconfig` fixture: instead of the local control plane,
pytest-kind creates a kind cluster, and two of its workers are made to look
like GPU nodes (product label, extended resource, GPU taint), as a device
plugin and a GPU node pool would.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pytest_kind import KindCluster

from kubeserve.devcluster import build
from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE

KIND_CONFIG = Path(__file__).with_name("kind-config.yaml")


def _docker_engine_runs() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _make_gpu_nodes(kubeconfig: Path) -> None:
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(str(kubeconfig)))
    for node in core.list_node(label_selector=GPU_PRODUCT_LABEL).items:
        core.patch_node(
            node.metadata.name,
            {"spec": {"taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]}},
        )
        core.patch_node_status(node.metadata.name, {"status": {"capacity": {GPU_RESOURCE: "8"}}})


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    if not _docker_engine_runs():
        pytest.skip("kind needs a Docker engine, and `docker info` found none on this machine")
    cluster = KindCluster("kubeserve-e2e", kind_path=build.ensure_kind())
    cluster.create(config_file=KIND_CONFIG)
    try:
        _make_gpu_nodes(cluster.kubeconfig_path)
        yield str(cluster.kubeconfig_path)
    finally:
        cluster.delete()
