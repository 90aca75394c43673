"""The Quick start's end on the real node: `examples/sklearn-iris-local.yaml`, applied as it is, fetches
its model from the dev cluster's own model store and answers as that model does."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
from kubernetes import client as k8s

from kubeserve.devcluster import model_store
from kubeserve.devcluster.cluster import ClusterState
from tests.cluster.isvc import Isvcs, example
from tests.node.workloads import Models, routed


def test_the_local_example_predicts_from_the_dev_clusters_model_store(
    real_cluster: ClusterState,
    node_kube: k8s.ApiClient,
    installed_operator: str,
    node_namespace: str,
    models: Models,
) -> None:
    stored = Path(real_cluster.directory) / "models" / model_store.SKLEARN_IRIS
    served_model = joblib.load(stored)
    isvcs = Isvcs(node_kube, node_namespace)
    isvc = isvcs.apply(example("sklearn-iris-local.yaml"))
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"{model_store.URL}/{model_store.SKLEARN_IRIS}"
    isvcs.wait_ready("sklearn-iris-local", timeout=180)
    service = k8s.CoreV1Api(node_kube).read_namespaced_service("sklearn-iris-local-predictor", node_namespace)
    response = httpx.post(
        f"http://{routed(service.spec.cluster_ip)}/v1/models/sklearn-iris-local:predict",
        json={"instances": models.inputs},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": served_model.predict(models.inputs).tolist()}
