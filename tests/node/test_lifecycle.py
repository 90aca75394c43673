"""The real node's own life: up, a crash, up again (which sweeps the crash), a second node refused,
and down leaving nothing on the machine. Runs before the session's node exists (see conftest)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubeserve.devcluster import host_network, pause, real_node
from kubeserve.devcluster.cluster import LocalControlPlane
from tests.node.conftest import require_real_node
from tests.polling import eventually


def sysctls() -> dict[str, str | None]:
    return {key: host_network._read_sysctl(key) for key in host_network.SYSCTLS}


def running_pause_pod(kubeconfig: str) -> None:
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(kubeconfig))
    container = {"name": "pause", "image": pause.PAUSE_IMAGE, "imagePullPolicy": "Never"}
    core.create_namespaced_pod("default", {"metadata": {"name": "left"}, "spec": {"containers": [container]}})
    eventually(
        lambda: core.read_namespaced_pod("left", "default").status.phase == "Running",
        timeout=60,
        what="a pod Running on the real node",
    )


def test_a_crashed_node_is_swept_and_down_leaves_nothing(tmp_path: Path) -> None:
    require_real_node()
    before = sysctls()
    crashed = LocalControlPlane(tmp_path / "crashed")
    plane = LocalControlPlane(tmp_path / "after")
    try:
        state = crashed.up(timeout=180.0, real=True)
        running_pause_pod(state.kubeconfig)
        for name, pid in state.processes.items():
            if crashed.running()[name]:
                os.kill(pid, signal.SIGKILL)
        eventually(lambda: not any(crashed.running().values()), what="the crashed cluster's processes to die")
        assert any(item.startswith("process") for item in real_node.leftovers()), (
            "a pod's shim outlives a crash"
        )

        plane.up(timeout=180.0, real=True)
        with pytest.raises(host_network.HostError, match="a real node already runs"):
            LocalControlPlane(tmp_path / "second").up(timeout=60.0, real=True)
        crashed.down()
        assert plane.running() and all(plane.running().values()), "the crashed cluster's down left it alone"
    finally:
        plane.down()
        crashed.down()
    assert real_node.leftovers() == []
    assert sysctls() == before
