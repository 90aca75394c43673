"""The dev cluster's kwok stages: kwok's own, made to leave simulated pods to Kubeserve's stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeserve.devcluster import build

STOCK_POD_READY = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
  next:
    statusTemplate: |
      phase: Running
"""


def test_stock_pod_ready_skips_pods_a_project_stage_simulates(tmp_path: Path) -> None:
    path = tmp_path / "pod-ready.yaml"
    path.write_text(STOCK_POD_READY)
    stage = yaml.safe_load(build._stock_stage(path))
    assert stage["spec"]["selector"]["matchExpressions"][-1] == build.SKIP_SIMULATED
    assert stage["spec"]["next"]["statusTemplate"] == "phase: Running\n"


def test_other_stock_stages_are_copied_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "pod-delete.yaml"
    path.write_text(STOCK_POD_READY.replace("pod-ready", "pod-delete"))
    assert build._stock_stage(path) == path.read_text()


def test_every_simulation_the_stock_stage_skips_has_a_project_stage() -> None:
    selected = set()
    for path in build.PROJECT_STAGES.glob("*.yaml"):
        for expression in yaml.safe_load(path.read_text())["spec"]["selector"]["matchExpressions"]:
            if expression["key"] == build.SKIP_SIMULATED["key"] and expression["operator"] == "In":
                selected.update(expression["values"])
    assert selected == set(build.SKIP_SIMULATED["values"])


def test_a_changed_project_stage_names_a_new_stages_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "PROJECT_STAGES", tmp_path)
    (tmp_path / "pod-x.yaml").write_text("a: 1\n")
    before = build.kwok_stages_file()
    (tmp_path / "pod-x.yaml").write_text("a: 2\n")
    assert build.kwok_stages_file() != before
    assert build.kwok_stages_file().parent == before.parent
