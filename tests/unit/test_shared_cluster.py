"""Tests that install or remove cluster-wide objects skip on a cluster KUBECONFIG names, before any
fixture runs: there, deleting the Gateway API CRDs would delete every HTTPRoute of other users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_WIDE = {
    "tests/cluster/test_canary.py::test_istio_virtual_service_weights_when_only_istio_is_served",
    "tests/cluster/test_canary.py::test_http_route_weights_follow_the_canary_and_mirror_to_it",
    "tests/cluster/test_install.py::test_install_establishes_crds_and_rolls_out_the_operator",
    "tests/cluster/test_install.py::test_the_charts_account_is_enough_to_serve_a_model",
}
"""A sample of the tests that change what every user of the cluster sees."""


def test_cluster_wide_tests_skip_on_a_cluster_the_session_did_not_start(tmp_path: Path) -> None:
    unreachable = tmp_path / "kubeconfig"  # never read: the tests skip before any fixture runs
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "cluster_wide", "-v", "-rs"]
    result = subprocess.run(
        [*command, "tests/cluster/test_canary.py", "tests/cluster/test_install.py"],
        cwd=REPO,
        env=os.environ | {"KUBECONFIG": str(unreachable)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    outcomes = dict(line.split(" ", 2)[:2] for line in lines if line.startswith("tests/"))
    assert set(outcomes) >= CLUSTER_WIDE
    assert set(outcomes.values()) == {"SKIPPED"}
    reasons = [line for line in lines if line.startswith("SKIPPED [")]
    assert len(reasons) == len(outcomes)
    assert all(f"never on the shared cluster of {unreachable} (KUBECONFIG)" in line for line in reasons)
