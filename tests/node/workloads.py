"""The user's path on the real node, as plain functions: the chart installed with the images built
here, an S3 emulator (moto's server) with models in it, credentials by reference, InferenceServices of
those models, and clients inside and outside the cluster. The node suite's fixtures and
`bench/real_node.py` both use them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import client as k8s
from moto.server import ThreadedMotoServer
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier

from kubeserve.devcluster import addresses, images, model_store
from tests.cluster.test_install import CHART, helm
from tests.polling import eventually
from tests.storage.conftest import S3Server

BUCKET = "models"
S3_KEY, S3_SECRET = "node-tests", "node-tests-secret"
ACCOUNT = "models"


def image_reference(name: str) -> str:
    """The reference the tree runs an image by: `operator`, `storage-initializer` or `model-server`."""
    return next(image.reference for image in images.all_images() if image.name == name)


@dataclass(frozen=True)
class ModelStore(S3Server):
    """The S3 server as pods reach it (the node's address), with the keys the tests' Secret holds."""

    host_port: str

    def client(self, key: str = S3_KEY, secret: str = S3_SECRET) -> Any:
        return super().client(key, secret)


@dataclass(frozen=True)
class Models:
    """The trained models and the inputs the tests send: predictions must equal `expected`."""

    inputs: list[list[float]]
    sklearn_expected: list[int]
    xgboost_expected: list[float]
    constant_class: int
    """What the model at sklearn/constant answers for any input (a canary that is easy to recognise)."""


def install_chart(kubeconfig: str, namespace: str = "kubeserve-system") -> str:
    """`helm install` of the chart with the images built here; returns once the operator's pod is Ready."""
    repository, tag = image_reference("operator").rsplit(":", 1)
    helm(
        kubeconfig,
        namespace,
        "install",
        "kubeserve",
        str(CHART),
        "--create-namespace",
        "--set",
        f"image.repository={repository},image.tag={tag},image.pullPolicy=Never,replicas=1",
        "--set",
        f"config.storageInitializer.image={image_reference('storage-initializer')}",
        "--wait",
        "--timeout",
        "180s",
    )
    return namespace


@contextmanager
def running_model_store() -> Iterator[ModelStore]:
    """moto's S3 emulator on the node's address, so pods reach it."""
    server = ThreadedMotoServer(ip_address=addresses.NODE_IP, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield ModelStore(f"http://{host}:{port}", f"{host}:{port}")
    finally:
        server.stop()


def upload_models(store: ModelStore) -> Models:
    """The examples' iris models (scikit-learn and XGBoost, as the dev cluster's store serves them) and a
    constant scikit-learn model, trained here and uploaded by their store paths."""
    features, labels = load_iris(return_X_y=True)
    s3: Any = store.client()
    s3.create_bucket(Bucket=BUCKET)
    trained = model_store.iris_models()
    trained["sklearn/constant/model.joblib"] = DummyClassifier(strategy="constant", constant=2).fit(
        features, labels
    )
    for key, model in trained.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=model_store.serialised(model))
    sklearn_model, booster = trained[model_store.SKLEARN_IRIS], trained[model_store.XGBOOST_IRIS]
    inputs = features[[0, 60, 120]]
    assert sklearn_model.predict(inputs[:1]).tolist() != [2], "the canary must answer differently"
    return Models(
        inputs=inputs.tolist(),
        sklearn_expected=sklearn_model.predict(inputs).tolist(),
        xgboost_expected=booster.predict(inputs).tolist(),
        constant_class=2,
    )


@contextmanager
def credentialed_namespace(kube: k8s.ApiClient, store: ModelStore) -> Iterator[str]:
    """A fresh namespace with a ServiceAccount `models` that carries the store's credentials by
    reference: a Secret and the `serving.kserve.io/s3-*` annotations."""
    core = k8s.CoreV1Api(kube)
    name = f"n-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_secret(
        name,
        {
            "metadata": {"name": "s3-credentials"},
            "stringData": {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
        },
    )
    core.create_namespaced_service_account(
        name,
        {
            "metadata": {
                "name": ACCOUNT,
                "annotations": {
                    "serving.kserve.io/s3-endpoint": store.host_port,
                    "serving.kserve.io/s3-usehttps": "0",
                    "serving.kserve.io/s3-region": "us-east-1",
                },
            },
            "secrets": [{"name": "s3-credentials"}],
        },
    )
    eventually(lambda: core.list_namespaced_service_account(name).items, what=f"ServiceAccounts in {name}")
    try:
        yield name
    finally:
        core.delete_namespace(name)


def routed(cluster_ip: str) -> str:
    """Wait until kube-proxy routes the Service (its rules follow the endpoints a moment after the pods
    are Ready, which is what Ready means); returns the address."""

    def answers() -> bool:
        try:
            return httpx.get(f"http://{cluster_ip}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    eventually(answers, timeout=30, what=f"the Service at {cluster_ip} to answer")
    return cluster_ip


def served(name: str, model_format: str, storage_uri: str, **predictor: Any) -> dict[str, Any]:
    """An InferenceService of a model in the store, fetched with the namespace's credentials."""
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "serviceAccountName": ACCOUNT,
                "model": {"modelFormat": {"name": model_format}, "storageUri": storage_uri},
                **predictor,
            }
        },
    }


CLIENT = """
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=20).read().decode())
"""


def client_pod_output(kube: k8s.ApiClient, namespace: str, url: str, body: dict[str, Any]) -> str:
    """POST `body` to `url` from a pod on the real node (the model server's image, for its Python);
    returns what it printed, read back through the API server from the kubelet."""
    core = k8s.CoreV1Api(kube)
    name = f"client-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "client",
                        "image": image_reference("model-server"),
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", CLIENT, url, json.dumps(body)],
                    }
                ],
            },
        },
    )

    def finished() -> str | None:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = eventually(finished, timeout=60, what=f"client pod {name} to finish")
    output: str = core.read_namespaced_pod_log(name, namespace)
    assert phase == "Succeeded", output
    return output
