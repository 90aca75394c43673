"""Driving InferenceServices in tests: apply from YAML or dicts, read status, wait for conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.polling import eventually

GROUP, VERSION, PLURAL = "serving.kubeserve.io", "v1beta1", "inferenceservices"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


def stored_deployment(kube: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The Deployment `name`, once the operator has made it, as the API server stores it: JSON, since
    the client's models would blur int and str."""

    def read() -> dict[str, Any] | None:
        try:
            response = k8s.AppsV1Api(kube).read_namespaced_deployment(name, namespace, _preload_content=False)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        loaded: dict[str, Any] = json.loads(response.data)
        return loaded

    return eventually(read, 20, f"Deployment {name}")


def pod_spec(kube: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The pod spec of the Deployment `name`, as stored."""
    spec: dict[str, Any] = stored_deployment(kube, namespace, name)["spec"]["template"]["spec"]
    return spec


def serving_runtime(name: str, **spec: Any) -> dict[str, Any]:
    """A namespaced ServingRuntime of sklearn; `container` is laid over its one container, the rest of
    `spec` over its spec."""
    container = {"name": "kserve-container", "image": "example/server:1", **spec.pop("container", {})}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServingRuntime",
        "metadata": {"name": name},
        "spec": {"supportedModelFormats": [{"name": "sklearn"}], "containers": [container], **spec},
    }


class Isvcs:
    """InferenceServices of one namespace."""

    def __init__(self, kube: k8s.ApiClient, namespace: str) -> None:
        self.api = k8s.CustomObjectsApi(kube)
        self.namespace = namespace

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply, as `kubectl apply --server-side` does; returns the object as stored."""
        name = body["metadata"]["name"]
        self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            body,
            field_manager="tests",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return result

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        return _condition_in(self.get(name), kind)

    def wait_condition(
        self,
        name: str,
        kind: str,
        status: str = "True",
        reason: str | None = None,
        timeout: float = 30.0,
        message_has: str = "",
    ) -> dict[str, Any]:
        """`message_has` waits out earlier messages of the same reason, written before the
        operator observed what the test is about (a pod's state arrives after its Deployment's)."""

        def probe() -> dict[str, Any] | None:
            body = self.get(name)
            current = body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]
            found = _condition_in(body, kind)
            if (
                current
                and found
                and found["status"] == status
                and (reason is None or found.get("reason") == reason)
                and message_has in found.get("message", "")
            ):
                return found
            return None

        return eventually(
            probe, timeout, f"{kind}={status} ({reason or 'any reason'}, {message_has!r}) on {name}"
        )

    def wait_ready(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for Ready=True written for the current generation: a status left from before the
        last apply does not count."""
        self.wait_condition(name, "Ready", timeout=timeout)
        return self.get(name)


def _condition_in(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = body.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)
