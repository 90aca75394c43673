"""Shared fixtures: a real control plane (or the cluster KUBECONFIG names), namespaces, the operator.

Without KUBECONFIG the session starts its own local control plane from the
cached binaries, in a private directory, and stops it by PID at the end. With
KUBECONFIG set, the same tests run against that cluster (kind, or a real one), except those
marked `cluster_wide`, which would change what every user of that cluster sees; Kubeserve's own CRDs
and shipped runtimes are applied there (what the tests test, never removed).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubeserve.devcluster.cluster import ClusterState, LocalControlPlane
from tests.operator_run import SessionOperator
from tests.polling import eventually

REPO = Path(__file__).resolve().parent.parent
OPERATOR_LOG_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState | None]:
    """The local control plane this session started, or None when KUBECONFIG names a cluster."""
    if os.environ.get("KUBECONFIG"):
        yield None
        return
    plane = LocalControlPlane(tmp_path_factory.mktemp("control-plane"))
    state = plane.up()
    os.environ["KUBECONFIG"] = state.kubeconfig
    try:
        yield state
    finally:
        os.environ.pop("KUBECONFIG", None)
        plane.down()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ClusterState | None) -> str:
    """Path of a kubeconfig for a working cluster; exported as KUBECONFIG for subprocesses."""
    return control_plane.kubeconfig if control_plane else os.environ["KUBECONFIG"]


@pytest.fixture(scope="session")
def audit_log(control_plane: ClusterState | None) -> Path:
    """The API server's audit log of writes (local control plane only)."""
    if control_plane is None:
        pytest.skip(
            "counting writes needs the local control plane's audit log; KUBECONFIG names another cluster"
        )
    return Path(control_plane.audit_log)


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> k8s.ApiClient:
    """A configured client of the kubernetes package."""
    return k8s_config.new_client_from_config(kubeconfig)


@pytest.fixture
def namespace(kube: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists), removed afterwards."""
    core = k8s.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"kubeserve.io/test": "true"}}})
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(name).items:
        assert time.monotonic() < deadline, f"default ServiceAccount never appeared in {name}"
        time.sleep(0.1)
    yield name
    core.delete_namespace(name)


def _apply_files(kubeconfig: str, *paths: Path) -> None:
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "--force-conflicts",
            *(arg for path in paths for arg in ("-f", str(path))),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def pod_image() -> str:
    """An image for pods that must run: kwok runs any container without pulling, so none is real.
    The kind suite overrides it with an image its nodes hold."""
    return "registry.invalid/model:1"


@pytest.fixture(scope="session")
def pod_start_timeout() -> float:
    """Seconds for a pod to be scheduled and Running: kwok is instant, kind starts containers."""
    return 30.0


@pytest.fixture(scope="session")
def installed(kubeconfig: str, kube: k8s.ApiClient) -> None:
    """Kubeserve's CRDs (Established) and the shipped ClusterServingRuntimes, as an install has them."""
    _apply_files(kubeconfig, REPO / "crds")
    extensions = k8s.ApiextensionsV1Api(kube)

    def established() -> bool:
        crds = extensions.list_custom_resource_definition().items
        ours = [c for c in crds if c.spec.group == "serving.kubeserve.io"]
        return len(ours) == len(list((REPO / "crds").glob("*.yaml"))) and all(
            any(cond.type == "Established" and cond.status == "True" for cond in c.status.conditions or [])
            for c in ours
        )

    eventually(established, what="Kubeserve's CRDs to be Established")
    _apply_files(kubeconfig, REPO / "manifests" / "runtimes")


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: str, installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SessionOperator]:
    """`kubeserve run` as a subprocess for the whole session, logging to one file."""
    session = SessionOperator(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    session.start()
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def operator(operator_process: SessionOperator, request: pytest.FixtureRequest) -> Path:
    """The running operator; a failed test gets the operator's log in its report."""
    request.node.stash[OPERATOR_LOG_KEY] = operator_process.log_path
    return operator_process.log_path


@pytest.fixture
def session_operator_stopped(operator_process: SessionOperator) -> Iterator[None]:
    """For a test that runs operators of its own and must be the only one reconciling."""
    with operator_process.stopped():
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    log_path = item.stash.get(OPERATOR_LOG_KEY, None)
    if log_path is not None and report.failed and log_path.exists():
        report.sections.append(
            (
                "operator log (last 200 lines)",
                "\n".join(log_path.read_text(errors="replace").splitlines()[-200:]),
            )
        )
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests are marked `cluster`. A test marked `cluster_wide(what)` installs or removes objects
    every user of a cluster shares (CRDs, ClusterRoles): it is skipped, before any fixture runs, on a
    cluster that KUBECONFIG names, which this session did not start and must not change for others."""
    shared = os.environ.get("KUBECONFIG")
    for item in items:
        if "tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.cluster)
        marker = item.get_closest_marker("cluster_wide")
        if shared and marker:
            where = f"never on the shared cluster of {shared} (KUBECONFIG)"
            reason = f"{marker.args[0]}: runs only on a control plane the session starts, {where}"
            item.add_marker(pytest.mark.skip(reason=reason))
