"""The chart installed with `helm` into kind, and an sklearn InferenceService from apply to a prediction.

Runs where a Docker engine does (conftest.py skips it elsewhere). In order:

1. `docker build` of the operator, storage-initializer and model-server images from this tree,
   under the names the chart and the shipped runtime use by default (prepare.py), then
   `kind load docker-image` into the plain workers: the only nodes where pods without
   tolerations land, the control plane and the GPU workers being tainted.
2. `helm upgrade --install` of charts/kubeserve into kubeserve-system, overriding only the images
   (pull policy IfNotPresent, so nothing is pulled), then every Deployment of the release Available.
3. In a fresh namespace: the model store (workloads.py: trains the iris model in the cluster and
   serves it over HTTP), then an sklearn InferenceService whose storageUri points at it, until Ready.
4. A client pod POSTs three iris rows to `status.address.url` + /v1/models/iris:predict, through
   the predictor's Service, and the answer must hold the three classes.

A wait that times out reports the pods (container states, last log lines) and events of the
namespaces concerned, the operator's included. The release stays installed until the session
deletes the cluster.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s
from pytest_kind import KindCluster

from kubeserve.devcluster.nodes import GPU_PRODUCT_LABEL
from kubeserve.planning.storage import INITIALIZER
from tests.e2e import prepare, workloads
from tests.e2e.prepare import Image
from tests.polling import eventually

RELEASE = "kubeserve"
RELEASE_NAMESPACE = "kubeserve-system"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
GROUP, VERSION = "serving.kubeserve.io", "v1beta1"
SERVER_RUNTIME = "kubeserve-server"
LOG_LINES = 40

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

T = TypeVar("T")


def _wait(probe: Callable[[], T | None], timeout: float, what: str, explain: Callable[[], str]) -> T:
    """`eventually`, with what the cluster looks like appended when it times out."""
    try:
        return eventually(probe, timeout=timeout, what=what, interval=2)
    except AssertionError as error:
        raise AssertionError(f"{error}\n\n{_safely(explain)}") from None


def _safely(explain: Callable[[], str]) -> str:
    try:
        return explain()
    except Exception as error:  # a diagnosis must never hide the failure it explains
        return f"(could not describe the cluster: {type(error).__name__}: {error})"


def _state(status: Any) -> str:
    state = status.state
    if state is not None and state.waiting is not None:
        return f"waiting ({state.waiting.reason}: {state.waiting.message or ''})"
    if state is not None and state.terminated is not None:
        done = state.terminated
        return f"terminated ({done.reason}, exit code {done.exit_code}: {done.message or ''})"
    return f"running, ready={status.ready}"


def _log(core: k8s.CoreV1Api, namespace: str, pod: str, container: str) -> str:
    try:
        text: str = core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=LOG_LINES)
    except k8s.ApiException:  # not started yet
        return ""
    return text


def describe(kube: k8s.ApiClient, *namespaces: str) -> str:
    """Pods, their containers' states and last log lines, and the latest events of `namespaces`."""
    core = k8s.CoreV1Api(kube)
    lines: list[str] = []
    for namespace in namespaces:
        for pod in core.list_namespaced_pod(namespace).items:
            name = pod.metadata.name
            lines.append(f"pod {namespace}/{name} on {pod.spec.node_name or '(no node)'}: {pod.status.phase}")
            for condition in pod.status.conditions or []:
                if condition.status != "True":
                    lines.append(f"  {condition.type}={condition.status} {condition.reason or ''}")
            statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
            for status in statuses:
                lines.append(
                    f"  {status.name} ({status.image}): {_state(status)}, {status.restart_count} restarts"
                )
            for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
                log = _log(core, namespace, name, container.name).rstrip()
                if log:
                    lines.append(f"  last lines of {container.name}:\n{textwrap.indent(log, '    ')}")
        events = core.list_namespaced_event(namespace).items
        events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        for event in events[-30:]:
            subject = f"{event.involved_object.kind}/{event.involved_object.name}"
            lines.append(f"event {namespace} {subject}: {event.type} {event.reason}: {event.message}")
    return "\n".join(lines)


def _plain_workers(core: k8s.CoreV1Api) -> list[str]:
    """Nodes neither control plane nor GPU (tainted in conftest.py): where the test's pods run."""
    nodes = core.list_node().items
    names = [
        n.metadata.name
        for n in nodes
        if CONTROL_PLANE_ROLE not in (n.metadata.labels or {})
        and GPU_PRODUCT_LABEL not in (n.metadata.labels or {})
    ]
    assert names, f"no plain worker among {[n.metadata.name for n in nodes]}: see kind-config.yaml"
    return names


def _helm(kubeconfig: str, *args: str) -> str:
    command = [str(prepare.ensure_helm()), *args, "--kubeconfig", kubeconfig]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"`helm {' '.join(args)}` failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _available(apps: k8s.AppsV1Api) -> list[str]:
    """Names of the release's Deployments once every one of them is Available, else []."""
    deployments = apps.list_namespaced_deployment(RELEASE_NAMESPACE).items
    done = [
        d.metadata.name
        for d in deployments
        if any(c.type == "Available" and c.status == "True" for c in (d.status.conditions or []))
    ]
    return done if deployments and len(done) == len(deployments) else []


@pytest.fixture(scope="module")
def loaded_images(kind_cluster: KindCluster, kube: k8s.ApiClient) -> tuple[Image, Image, Image]:
    """The three images, built from this tree (a cache hit when unchanged) and loaded into kind."""
    images = prepare.images()
    for image in images:
        try:
            prepare.build_image(image)
        except prepare.ImageBuildError as error:
            pytest.fail(str(error), pytrace=False)
    nodes = _plain_workers(k8s.CoreV1Api(kube))
    command = [
        str(kind_cluster.kind_path),
        "load",
        "docker-image",
        "--name",
        kind_cluster.name,
        "--nodes",
        ",".join(nodes),
        *(image.reference for image in images),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, (
        f"`{' '.join(command)}` failed:\n{result.stdout}{result.stderr}\n"
        "(`content digest ... not found` comes from Docker's containerd image store: kind issue #3795)"
    )
    return images


@pytest.fixture(scope="module")
def release(
    kubeconfig: str,
    kube: k8s.ApiClient,
    loaded_images: tuple[Image, Image, Image],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The chart installed into kubeserve-system with the loaded images; its namespace once Available."""
    values = tmp_path_factory.mktemp("helm") / "e2e-values.yaml"
    values.write_text(yaml.safe_dump(prepare.helm_values()))
    _helm(
        kubeconfig,
        "upgrade",
        "--install",
        RELEASE,
        str(prepare.CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--values",
        str(values),
    )
    _wait(
        lambda: _available(k8s.AppsV1Api(kube)),
        300,
        f"every Deployment in {RELEASE_NAMESPACE} Available",
        lambda: describe(kube, RELEASE_NAMESPACE),
    )
    return RELEASE_NAMESPACE


def test_chart_runs_the_operator_from_the_loaded_image_and_ships_the_runtime(
    kube: k8s.ApiClient, release: str, loaded_images: tuple[Image, Image, Image]
) -> None:
    operator, _, server = loaded_images
    pods = k8s.CoreV1Api(kube).list_namespaced_pod(release).items
    images = {c.image for p in pods for c in p.spec.containers}
    assert operator.reference in images, f"no pod of the release runs {operator.reference}: {images}"
    runtime = k8s.CustomObjectsApi(kube).get_cluster_custom_object(
        GROUP, VERSION, "clusterservingruntimes", SERVER_RUNTIME
    )
    assert runtime["spec"]["containers"][0]["image"] == server.reference


def test_sklearn_isvc_becomes_ready_and_predicts_through_its_service(
    kube: k8s.ApiClient, release: str, loaded_images: tuple[Image, Image, Image], namespace: str
) -> None:
    _, _, server = loaded_images
    core = k8s.CoreV1Api(kube)
    custom = k8s.CustomObjectsApi(kube)

    core.create_namespaced_service(namespace, workloads.model_store_service())
    core.create_namespaced_pod(namespace, workloads.model_store_pod(server.reference))

    def store_ready() -> bool:
        pod = core.read_namespaced_pod(workloads.STORE_NAME, namespace)
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    _wait(store_ready, 300, "the model store pod Ready", lambda: describe(kube, namespace))

    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", workloads.inference_service(namespace)
    )

    def isvc() -> dict[str, Any]:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferenceservices", workloads.MODEL_NAME
        )
        return found

    def ready() -> dict[str, Any] | None:
        found = isvc()
        conditions = found.get("status", {}).get("conditions") or []
        return found if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None

    ready_isvc = _wait(
        ready,
        420,
        f"InferenceService {workloads.MODEL_NAME} Ready",
        lambda: f"status: {isvc().get('status')}\n" + describe(kube, namespace, release),
    )
    status = ready_isvc["status"]
    assert status.get("runtime", {}).get("name") == SERVER_RUNTIME, status
    # kubeserve-server fetches its own model (its runtime's storageHelper.disabled): no initializer, and
    # the server is given the model's location.
    pods = core.list_namespaced_pod(namespace).items
    assert not [c for p in pods for c in p.spec.init_containers or [] if c.name == INITIALIZER]
    servers = [c for p in pods for c in p.spec.containers if c.image == server.reference]
    assert servers and all(any(e.name == "STORAGE_URI" for e in c.env or []) for c in servers), servers

    url = workloads.predict_url(status["address"]["url"])
    core.create_namespaced_pod(namespace, workloads.client_pod(server.reference, url))

    def finished() -> str | None:
        phase: str = core.read_namespaced_pod(workloads.CLIENT_NAME, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = _wait(
        finished, 360, f"the client pod to finish POSTing to {url}", lambda: describe(kube, namespace)
    )
    output = core.read_namespaced_pod_log(workloads.CLIENT_NAME, namespace)
    assert phase == "Succeeded", f"the client pod {phase} on {url}; its output:\n{output}"
    answer = workloads.parse_response(output)
    assert answer.get("predictions") == workloads.EXPECTED_PREDICTIONS, answer
