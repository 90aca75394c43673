"""The same scenarios in a kind cluster, for machines with a Docker engine.

Overrides the root `kubeconfig` fixture: instead of the local control plane,
pytest-kind creates a kind cluster (the `kind_cluster` fixture, for tests that
load images into it), waits until every node is Ready, and makes two of its
workers look like GPU nodes (product label, extended resource, GPU taint), as a
device plugin and a GPU node pool would.

Without a Docker engine the kind tests are skipped, unless KUBESERVE_E2E_REQUIRE_DOCKER
is set (CI sets it): then they fail, so that a runner without Docker cannot pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pytest_kind import KindCluster

from kubeserve.devcluster import build
from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tests.e2e.prepare import REQUIRE_DOCKER
from tests.polling import eventually

KIND_CONFIG = Path(__file__).with_name("kind-config.yaml")
CLUSTER_NAME = "kubeserve-e2e"
NO_DOCKER = "kind needs a Docker engine, and `docker info` found none on this machine"


def _docker_engine_runs() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait_for_ready_nodes(core: k8s.CoreV1Api) -> None:
    """`kind create cluster` returns once the nodes have joined, not once they are Ready."""

    def all_ready() -> bool:
        nodes = core.list_node().items
        return bool(nodes) and all(
            any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []) for n in nodes
        )

    eventually(all_ready, timeout=300, interval=2, what="every kind node Ready")


def _make_gpu_nodes(core: k8s.CoreV1Api) -> None:
    for node in core.list_node(label_selector=GPU_PRODUCT_LABEL).items:
        core.patch_node(
            node.metadata.name,
            {"spec": {"taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]}},
        )
        core.patch_node_status(node.metadata.name, {"status": {"capacity": {GPU_RESOURCE: "8"}}})

    def allocatable() -> bool:
        """The kubelet copies the capacity into allocatable, which the scheduler reads, on its next sync."""
        gpu_nodes = core.list_node(label_selector=GPU_PRODUCT_LABEL).items
        return bool(gpu_nodes) and all(GPU_RESOURCE in (n.status.allocatable or {}) for n in gpu_nodes)

    eventually(allocatable, timeout=120, interval=2, what=f"{GPU_RESOURCE} in the GPU nodes' allocatable")


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[KindCluster]:
    """The suite's one kind cluster. Named as pytest-kind's own fixture, which it replaces, so that
    no test can start a second cluster by asking for `kind_cluster`."""
    if not _docker_engine_runs():
        if os.environ.get(REQUIRE_DOCKER):
            pytest.fail(f"{NO_DOCKER}, and {REQUIRE_DOCKER} is set", pytrace=False)
        pytest.skip(NO_DOCKER)
    cluster = KindCluster(CLUSTER_NAME, kind_path=build.ensure_kind())
    cluster.create(config_file=KIND_CONFIG)
    try:
        core = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig_path)))
        _wait_for_ready_nodes(core)
        _make_gpu_nodes(core)
        yield cluster
    finally:
        cluster.delete()


@pytest.fixture(scope="session")
def kubeconfig(kind_cluster: KindCluster) -> str:
    return str(kind_cluster.kubeconfig_path)


@pytest.fixture(scope="session")
def pod_image(kubeconfig: str) -> str:
    """The pause image, which the kind node image ships for pod sandboxes: present on every node,
    never pulled (kwok's stand-in image exists in no registry)."""
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(kubeconfig))
    names = {
        name
        for node in core.list_node().items
        for image in node.status.images or []
        for name in image.names or []
    }
    pause = sorted(n for n in names if "/pause:" in n and "@" not in n)
    assert pause, f"no pause image in the nodes' image lists: {sorted(names)}"
    return pause[-1]


@pytest.fixture(scope="session")
def pod_start_timeout() -> float:
    """kind starts real containers, on a shared CI runner."""
    return 120.0
