"""oci:// models on the control plane: the Deployment runs KServe's modelcar (the model image as a
sidecar in a pod sharing its process namespace, an init container on the same image, all restricted and
of one user and group), oci+native:// is an image volume the API server accepts, both services get Ready
(kwok runs the pods), and an image reference that is not one gets InvalidStorageUri."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs, example, pod_spec

IMAGE = "example/models/sklearn-iris:v1"
RESTRICTED_AS_ONE = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SMALL = {"cpu": "10m", "memory": "15Mi"}


def applied(kube: k8s.ApiClient, namespace: str, name: str, uri: str) -> Isvcs:
    """The sklearn example as `name`, its model at `uri`, applied."""
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = name
    body["spec"]["predictor"]["model"]["storageUri"] = uri
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(body)
    return isvcs


def deployed(kube: k8s.ApiClient, namespace: str, name: str, uri: str) -> tuple[Isvcs, dict[str, Any]]:
    """`applied`, and the pod spec of its predictor's Deployment."""
    return applied(kube, namespace, name, uri), pod_spec(kube, namespace, f"{name}-predictor")


def test_an_oci_model_is_served_by_a_modelcar_sidecar_sharing_the_pods_processes(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs, pod = deployed(kube, namespace, "modelcar", f"oci://{IMAGE}")
    assert pod["shareProcessNamespace"] is True
    server, sidecar = pod["containers"]
    [init] = pod["initContainers"]
    assert (server["name"], sidecar["name"], init["name"]) == (
        "kserve-container",
        "modelcar",
        "modelcar-init",
    )
    assert sidecar["image"] == init["image"] == IMAGE
    assert sidecar["command"] == [
        "sh",
        "-c",
        "ln -sfn /proc/$$$$/root/models /mnt/models && exec sleep infinity",
    ]
    assert init["command"][:2] == ["sh", "-c"] and "/models" in init["command"][2]
    for container in (server, sidecar, init):
        assert container["securityContext"] == RESTRICTED_AS_ONE, container["name"]
    for container in (sidecar, init):
        assert container["resources"] == {"requests": SMALL, "limits": SMALL}
    assert {"name": "kserve-provision-location", "emptyDir": {}} in pod["volumes"]
    assert sidecar["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/mnt"}]
    assert {"name": "kserve-provision-location", "mountPath": "/mnt", "readOnly": True} in server[
        "volumeMounts"
    ]
    assert {"name": "MODEL_INIT_MODE", "value": "async"} in server["env"]
    isvcs.wait_ready("modelcar", timeout=30)


def test_an_oci_native_model_is_an_image_volume_the_api_server_accepts(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs, pod = deployed(kube, namespace, "native", f"oci+native://{IMAGE}")
    [volume] = [v for v in pod["volumes"] if "image" in v]
    assert volume["name"] == "mnt-models" and volume["image"]["reference"] == IMAGE
    [server] = pod["containers"]
    assert {
        "name": "mnt-models",
        "mountPath": "/mnt/models",
        "readOnly": True,
        "subPath": "models",
    } in server["volumeMounts"]
    assert "shareProcessNamespace" not in pod and "initContainers" not in pod
    isvcs.wait_ready("native", timeout=30)


def test_an_oci_uri_that_names_no_image_is_an_invalid_storage_uri(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = applied(kube, namespace, "bad-image", "oci://Example/Models:v1")
    ready = isvcs.wait_condition("bad-image", "Ready", status="False", reason="InvalidStorageUri", timeout=20)
    assert "'Example/Models:v1' is not an image reference" in ready["message"]
    assert "path in lowercase" in ready["message"]
