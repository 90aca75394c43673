"""The user's path on a real node: a control plane with one real node, the project's images built and
imported, the chart installed with them, and an S3 emulator (moto's server) holding the models.

Everything here is session-scoped: the node, the images and the operator are made once. The suite
runs in a pytest session of its own (`make test` gives it one), as it starts a second control plane.
Without the machine's support for a real node (Linux, root, cgroups, containerd) it skips, saying
why; with KUBESERVE_REQUIRE_REAL_NODE=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubeserve.devcluster import images, real_node
from kubeserve.devcluster.cluster import ClusterState, LocalControlPlane
from tests.node.workloads import (
    Models,
    ModelStore,
    credentialed_namespace,
    install_chart,
    running_model_store,
    upload_models,
)


def require_real_node() -> None:
    """Skip, saying why, where this machine cannot host a node; fail instead when CI requires it."""
    reason = real_node.unsupported_reason()
    if reason:
        if os.environ.get("KUBESERVE_REQUIRE_REAL_NODE") == "1":
            pytest.fail(f"the real-node suite cannot run here: {reason}")
        pytest.skip(f"the real-node suite needs this machine to host a node: {reason}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The node's own life-cycle test first: it starts and stops nodes, so the session's must not run."""
    items.sort(key=lambda item: item.path.name != "test_lifecycle.py")


@pytest.fixture(scope="session")
def built_images() -> list[images.BuiltImage]:
    """The three images, built (or found in the cache) from this tree."""
    require_real_node()
    return images.ensure_images()


@pytest.fixture(scope="session")
def real_cluster(
    built_images: list[images.BuiltImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterState]:
    plane = LocalControlPlane(tmp_path_factory.mktemp("real-cluster"))
    state = plane.up(timeout=180.0, real=True)
    try:
        real_node.RealNode(plane.directory, plane.logs).import_images(
            [image.archive for image in built_images]
        )
        yield state
    finally:
        plane.down()


@pytest.fixture(scope="session")
def node_kube(real_cluster: ClusterState) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(real_cluster.kubeconfig)


@pytest.fixture(scope="session")
def installed_operator(real_cluster: ClusterState, built_images: list[images.BuiltImage]) -> str:
    """The chart, installed with the images built here; the operator's namespace."""
    return install_chart(real_cluster.kubeconfig)


@pytest.fixture(scope="session")
def model_store(real_cluster: ClusterState) -> Iterator[ModelStore]:
    with running_model_store() as store:
        yield store


@pytest.fixture(scope="session")
def models(model_store: ModelStore) -> Models:
    return upload_models(model_store)


@pytest.fixture
def node_namespace(node_kube: k8s.ApiClient, model_store: ModelStore) -> Iterator[str]:
    with credentialed_namespace(node_kube, model_store) as name:
        yield name


@pytest.fixture(scope="module")
def node_namespace_module(node_kube: k8s.ApiClient, model_store: ModelStore) -> Iterator[str]:
    """For services that several tests of a module share."""
    with credentialed_namespace(node_kube, model_store) as name:
        yield name
