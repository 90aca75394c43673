"""What goes wrong on a real node shows in the InferenceService's condition, in the cluster's words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs
from tests.node.workloads import Models, ModelStore, served
from tests.polling import eventually

ABSENT_IMAGE = "localhost/kubeserve/absent:1"


def failed_predictor(isvcs: Isvcs, name: str, needle: str) -> dict[str, object]:
    """PredictorReady False with `needle` in its message, and Ready False too."""

    def probe() -> dict[str, object] | None:
        found = isvcs.condition(name, "PredictorReady")
        if found and found["status"] == "False" and needle in found.get("message", ""):
            return found
        return None

    condition = eventually(probe, timeout=120, what=f"PredictorReady False mentioning {needle!r}")
    ready = isvcs.condition(name, "Ready")
    assert ready is not None and ready["status"] == "False"
    return condition


def test_an_image_that_is_not_on_the_node(
    node_kube: k8s.ApiClient, installed_operator: str, node_namespace: str
) -> None:
    isvcs = Isvcs(node_kube, node_namespace)
    container = {"name": "kserve-container", "image": ABSENT_IMAGE, "imagePullPolicy": "Never"}
    isvcs.apply(
        {
            "apiVersion": "serving.kubeserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "no-image"},
            "spec": {"predictor": {"containers": [container]}},
        }
    )
    condition = failed_predictor(isvcs, "no-image", ABSENT_IMAGE)
    assert condition["reason"] == "ErrImageNeverPull"


def test_a_model_that_fails_to_load(
    node_kube: k8s.ApiClient,
    installed_operator: str,
    node_namespace: str,
    model_store: ModelStore,
    models: Models,
) -> None:
    model_store.client().put_object(Bucket="models", Key="sklearn/broken/model.joblib", Body=b"not a pickle")
    isvcs = Isvcs(node_kube, node_namespace)
    isvcs.apply(served("broken", "sklearn", "s3://models/sklearn/broken"))
    condition = failed_predictor(isvcs, "broken", "failed to load")
    assert "model.joblib" in str(condition["message"]) or "pickle" in str(condition["message"])


@pytest.fixture
def refusing_store(model_store: ModelStore) -> Iterator[ModelStore]:
    """The store with its credential checks on: the tests' keys belong to no user it knows."""
    model_store.enforce_auth(True)
    try:
        yield model_store
    finally:
        model_store.enforce_auth(False)


def test_a_wrong_s3_credential(
    node_kube: k8s.ApiClient, installed_operator: str, node_namespace: str, refusing_store: ModelStore
) -> None:
    isvcs = Isvcs(node_kube, node_namespace)
    isvcs.apply(served("no-access", "sklearn", "s3://models/sklearn/iris"))
    # kubeserve-server fetches its own model: its download's reason is the server's exit reason.
    condition = failed_predictor(isvcs, "no-access", "cannot fetch s3://models/sklearn/iris")
    assert "InvalidAccessKeyId" in str(condition["message"]) or "403" in str(condition["message"])
