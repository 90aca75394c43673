"""What the kind suite relies on, checked without Docker, so that these checks run everywhere.

- The pods' scripts and commands (workloads.py), run here in the same order as in the cluster:
  train into a directory, serve it with `python -m http.server`, fetch the model over HTTP with
  the storage initializer, serve it with the model server, and ask it with the client script.
- The helm values the suite installs with (prepare.py) render the loaded images into the chart.
- The GitHub workflow builds the images and runs the suite the way prepare.py says.

Processes are started by this test and stopped by their own PIDs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.devcluster import versions
from kubeserve.devcluster.ports import free_port
from tests.e2e import prepare, workloads

WORKFLOW = prepare.REPO / ".github" / "workflows" / "e2e.yaml"
STARTUP_SECONDS = 90.0


def _local(command: list[str]) -> list[str]:
    """A pod's command for this machine: the image's `python` is this interpreter."""
    return [sys.executable if part == "python" else part for part in command]


@contextlib.contextmanager
def _running(command: list[str], log: Path, probe_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until `probe_url` answers 200, and stop it by its PID afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"{command[:4]} exited: {log.read_text()}"
            with contextlib.suppress(OSError), urllib.request.urlopen(probe_url, timeout=5) as reply:
                if reply.status == 200:
                    break
            assert time.monotonic() < deadline, f"{probe_url} never answered: {log.read_text()}"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_pod_scripts_train_store_fetch_serve_and_predict(tmp_path: Path) -> None:
    store, fetched = tmp_path / "store", tmp_path / "mnt-models"
    store.mkdir()
    fetched.mkdir()
    trained = subprocess.run(
        _local(["python", "-c", workloads.TRAIN, str(store)]), capture_output=True, text=True, check=False
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (store / workloads.MODEL_FILE).is_file()

    store_port = free_port()
    serve = _local(workloads.serve_command(store_port, "127.0.0.1", str(store)))
    model_url = f"http://127.0.0.1:{store_port}/{workloads.MODEL_FILE}"
    with _running(serve, tmp_path / "store.log", model_url):
        # The init container's command: the image's entry point with the operator's args.
        fetch = [sys.executable, "-m", "kubeserve_storage", model_url, str(fetched)]
        fetched_run = subprocess.run(fetch, capture_output=True, text=True, timeout=120, check=False)
        assert fetched_run.returncode == 0, fetched_run.stdout + fetched_run.stderr
    assert (fetched / workloads.MODEL_FILE).read_bytes() == (store / workloads.MODEL_FILE).read_bytes()

    http_port, grpc_port = free_port(), free_port()
    server = [
        sys.executable,
        "-m",
        "kubeserve_server",
        f"--model_name={workloads.MODEL_NAME}",
        f"--model_dir={fetched}",
        "--model_format=sklearn",
        "--host=127.0.0.1",
        f"--http_port={http_port}",
        f"--grpc_port={grpc_port}",
    ]
    address = f"http://127.0.0.1:{http_port}"
    with _running(server, tmp_path / "server.log", address + "/v2/health/ready"):
        asked = _ask(workloads.predict_url(address))
        # An error answer (here: no such model) is final: the client reports it and stops at once.
        started = time.monotonic()
        refused = _ask(f"{address}/v1/models/nothing:predict")
        refused_after = time.monotonic() - started
    assert asked.returncode == 0, asked.stdout + asked.stderr
    # In the cluster both streams end up in the pod's log: parse them together, as there.
    answer = workloads.parse_response(asked.stdout + asked.stderr)
    assert answer["predictions"] == workloads.EXPECTED_PREDICTIONS
    assert refused.returncode == 1 and "HTTP 404" in refused.stderr, refused.stdout + refused.stderr
    assert refused_after < 30
    with pytest.raises(AssertionError, match="printed no answer"):
        workloads.parse_response(refused.stdout + refused.stderr)


def _ask(url: str) -> subprocess.CompletedProcess[str]:
    client = _local(["python", "-c", workloads.CLIENT, url, workloads.PREDICT_BODY])
    return subprocess.run(client, capture_output=True, text=True, timeout=180, check=False)


def _render(values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    command = [
        str(prepare.ensure_helm()),
        "template",
        "kubeserve",
        str(prepare.CHART),
        "--namespace",
        "kubeserve-system",
        "--values",
        str(values_file),
        # Offline, helm assumes an old Kubernetes that the chart's kubeVersion refuses.
        "--kube-version",
        versions.KUBERNETES,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_suite_values_put_the_loaded_images_into_the_chart(tmp_path: Path) -> None:
    operator, storage, server = prepare.images()
    objects = _render(prepare.helm_values(), tmp_path)
    containers = [
        c for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert (operator.reference, "IfNotPresent") in [(c["image"], c["imagePullPolicy"]) for c in containers]
    configs = [yaml.safe_load(o["data"]["config.yaml"]) for o in objects if o["kind"] == "ConfigMap"]
    assert [c["storageInitializer"]["image"] for c in configs] == [storage.reference]
    runtimes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterServingRuntime"}
    assert runtimes["kubeserve-server"]["spec"]["containers"][0]["image"] == server.reference


def test_images_are_named_as_the_install_expects_them() -> None:
    operator, storage, server = prepare.images()
    for image in (operator, storage, server):
        assert (prepare.REPO / image.dockerfile).is_file(), image
        assert image.build_command()[-1] == ".", "the repository root is every image's build context"
    assert operator.reference.endswith(
        ":" + str(yaml.safe_load((prepare.CHART / "Chart.yaml").read_text())["appVersion"])
    )
    assert (
        server.reference
        == yaml.safe_load(prepare.SERVER_RUNTIME.read_text())["spec"]["containers"][0]["image"]
    )


def test_workflow_prepares_and_runs_the_suite() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    runs = {
        job: "\n".join(step.get("run", "") for step in spec["steps"])
        for job, spec in workflow["jobs"].items()
    }
    kind_jobs = [job for job, script in runs.items() if "make test-e2e" in script]
    assert kind_jobs, "no job runs the kind suite"
    for job in kind_jobs:
        assert "python -m tests.e2e.prepare" in runs[job], f"{job} does not build kind, helm and the images"
        uses = [step.get("uses", "") for step in workflow["jobs"][job]["steps"]]
        assert any(u.startswith("actions/setup-go@") for u in uses), f"{job} has no Go to build kind and helm"
        suite = next(
            step for step in workflow["jobs"][job]["steps"] if "make test-e2e" in step.get("run", "")
        )
        assert suite.get("env", {}).get(prepare.REQUIRE_DOCKER), (
            f"{job} would pass by skipping without Docker"
        )
    assert any("make lint" in script for script in runs.values())
