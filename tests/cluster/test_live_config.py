"""The operator follows its ConfigMap: a change re-plans the services at once, a bad one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs, example
from tests.operator_run import running_operator
from tests.polling import eventually

CONFIG_MAP = "kubeserve-config"

pytestmark = pytest.mark.usefixtures("session_operator_stopped")


def _config(image: str) -> dict[str, str]:
    return {"config.yaml": yaml.safe_dump({"storageInitializer": {"image": image}})}


def _init_image(kube: k8s.ApiClient, namespace: str) -> str | None:
    deployments = k8s.AppsV1Api(kube).list_namespaced_deployment(namespace).items
    inits = [c.image for d in deployments for c in d.spec.template.spec.init_containers or []]
    return inits[0] if len(inits) == 1 else None


def test_a_config_change_re_plans_services_without_a_restart_and_a_bad_one_is_refused(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": CONFIG_MAP}, "data": _config("example.com/init:1")}
    )
    args = ("--namespace", namespace, "--operator-namespace", namespace, "--config-map", CONFIG_MAP)
    args += ("--log-format", "json")
    with running_operator(kubeconfig, tmp_path / "operator.log", *args) as process:
        isvcs = Isvcs(kube, namespace)
        # TensorFlow Serving has a storage initializer (kubeserve-server fetches its own model).
        isvcs.apply(example("tensorflow-serving.yaml"))
        isvcs.wait_ready("tf-flowers")
        assert _init_image(kube, namespace) == "example.com/init:1"

        core.patch_namespaced_config_map(CONFIG_MAP, namespace, {"data": _config("example.com/init:2")})
        eventually(lambda: _init_image(kube, namespace) == "example.com/init:2", 20, "the new image applied")

        bad = {"config.yaml": yaml.safe_dump({"storageInitializer": {"imag": "example.com/init:3"}})}
        core.patch_namespaced_config_map(CONFIG_MAP, namespace, {"data": bad})

        def refusal() -> list[k8s.CoreV1Event]:
            events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={CONFIG_MAP}")
            return [e for e in events.items if e.reason == "InvalidConfiguration"]

        event = eventually(refusal, 20, "a Warning event on the ConfigMap")[0]
        assert event.type == "Warning"
        assert event.message == "config.yaml: storageInitializer.imag: Extra inputs are not permitted"

        # The configuration in force stays, for existing and new services alike.
        other = example("tensorflow-serving.yaml")
        other["metadata"]["name"] = "flowers-after"
        isvcs.apply(other)
        isvcs.wait_ready("flowers-after")
        deployments = k8s.AppsV1Api(kube).list_namespaced_deployment(namespace).items
        assert {c.image for d in deployments for c in d.spec.template.spec.init_containers or []} == {
            "example.com/init:2"
        }
        assert process.poll() is None, "the operator exited"
    lines = [json.loads(line) for line in (tmp_path / "operator.log").read_text().splitlines()]
    refused = [line for line in lines if "refused, the configuration in force stays" in line["message"]]
    assert refused and refused[0]["severity"] == "error"
    decisions = [line for line in lines if line.get("isvc") == f"{namespace}/tf-flowers"]
    assert any(line.get("applied") for line in decisions), "no structured line for the applied children"
    assert any(line.get("ready") == "True" for line in decisions), "no structured line for Ready"
