"""An `oci://` model on the real node: the model image, built here, runs as the modelcar sidecar, and
kubeserve-server reads the model through /proc/<pid>/root and answers as the model does."""

from __future__ import annotations

import httpx
import joblib
import pytest
from kubernetes import client as k8s
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from kubeserve.devcluster import images, real_node
from kubeserve.devcluster.cluster import ClusterState
from tests.cluster.isvc import Isvcs
from tests.node.workloads import routed

REFERENCE = "example.com/models/iris-tree:v1"
NAME = "iris-modelcar"


@pytest.fixture(scope="module")
def model_image(
    real_cluster: ClusterState,
    built_images: list[images.BuiltImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> DecisionTreeClassifier:
    """A model image as KServe's modelcars are made (the model under /models, a shell to link it),
    built on the images' base with buildah and imported into the node's containerd."""
    work = tmp_path_factory.mktemp("modelcar")
    features, labels = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0).fit(features, labels)
    joblib.dump(model, work / "model.joblib")
    archive = images.pack_files(REFERENCE, {work / "model.joblib": "/models/"}, work / "modelcar.oci.tar")
    real_node.import_images(real_node.node_files(), [archive])
    return model


def test_an_oci_model_is_served_from_its_image_through_the_modelcar(
    node_kube: k8s.ApiClient,
    installed_operator: str,
    node_namespace: str,
    model_image: DecisionTreeClassifier,
) -> None:
    isvcs = Isvcs(node_kube, node_namespace)
    isvcs.apply(
        {
            "apiVersion": "serving.kubeserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": NAME},
            "spec": {
                "predictor": {
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"oci://{REFERENCE}"}
                }
            },
        }
    )
    isvcs.wait_ready(NAME, timeout=180)
    service = k8s.CoreV1Api(node_kube).read_namespaced_service(f"{NAME}-predictor", node_namespace)
    address = routed(service.spec.cluster_ip)
    features, _ = load_iris(return_X_y=True)
    rows = features[[0, 60, 120]]
    response = httpx.post(
        f"http://{address}/v1/models/{NAME}:predict", json={"instances": rows.tolist()}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model_image.predict(rows).tolist()
