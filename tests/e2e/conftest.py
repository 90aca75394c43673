"""The same scenarios in a kind cluster, for machines with a Docker engine.

Overrides the root `kubeconfig` fixture: instead of the local control plane,
pytest-kind creates a kind cluster (the `kind_cluster` fixture, for tests that
load images into it), and two of its workers are made to look like GPU nodes
(product label, extended resource, GPU taint), as a device plugin and a GPU node
pool would.
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
CLUSTER_NAME = "kubeserve-e2e"


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
def kind_cluster() -> Iterator[KindCluster]:
    """The suite's one kind cluster. Named as pytest-kind's own fixture, which it replaces, so that
    no test can start a second cluster by asking for `kind_cluster`."""
    if not _docker_engine_runs():
        pytest.skip("kind needs a Docker engine, and `docker info` found none on this machine")
    cluster = KindCluster(CLUSTER_NAME, kind_path=build.ensure_kind())
    cluster.create(config_file=KIND_CONFIG)
    try:
        _make_gpu_nodes(cluster.kubeconfig_path)
        yield cluster
    finally:
        cluster.delete()


@pytest.fixture(scope="session")
def kubeconfig(kind_cluster: KindCluster) -> str:
    return str(kind_cluster.kubeconfig_path)
