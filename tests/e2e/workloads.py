"""The objects the kind install test creates besides the chart, and the scripts their pods run.

Nothing in the cluster reaches the internet. The model is trained in the cluster
itself, by an init container of the model-store pod that runs the model-server
image's Python on the iris data scikit-learn ships, so the pickle always comes
from the very scikit-learn release that will load it (a pickle made by the test
runner's own scikit-learn could be of another release than the image's). The pod
then serves it with `python -m http.server`, and the InferenceService's
storageUri points there over plain http://, which the storage initializer fetches
like any https:// URL.

A prediction goes through the predictor's Service from a client pod in the same
namespace, to the URL the operator published in `status.address.url`.

tests/e2e/test_offline.py runs the same scripts and commands on this machine
(train, serve, fetch with kubeserve-storage, serve with kubeserve-server, ask),
so everything but Kubernetes itself is checked where no Docker engine runs.
"""

from __future__ import annotations

import json
from typing import Any

MODEL_NAME = "iris"
MODEL_FILE = "model.joblib"
STORE_NAME = "model-store"
STORE_PORT = 8000
STORE_DIR = "/models"
CLIENT_NAME = "predict"
RESPONSE_MARK = "RESPONSE "
"""The client prints the server's answer on one line after this mark, apart from any retry messages."""

TRAIN = """\
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

features, labels = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(features, labels)
target = sys.argv[1] + "/model.joblib"
joblib.dump(model, target)
print("saved", target, "training accuracy", model.score(features, labels))
"""
"""Trains on the iris data that ships inside scikit-learn; argv[1] is the directory to save into."""

CLIENT = """\
import sys
import time
import urllib.error
import urllib.request

url, body = sys.argv[1], sys.argv[2].encode()
for attempt in range(1, 61):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            print("RESPONSE " + reply.read().decode(), flush=True)
            sys.exit(0)
    except urllib.error.HTTPError as error:
        print("HTTP", error.code, error.read().decode(), file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        # The Service's rules may reach the node a moment after the pod turned Ready.
        print("attempt", attempt, "failed:", error, file=sys.stderr, flush=True)
        time.sleep(2)
sys.exit(1)
"""
"""POSTs argv[2] to argv[1], retrying only while nothing answers; an HTTP error answer is final."""

INSTANCES = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
"""Rows 0, 50 and 100 of the iris data: one setosa, one versicolor, one virginica."""
EXPECTED_PREDICTIONS = [0, 1, 2]
PREDICT_BODY = json.dumps({"instances": INSTANCES})


def serve_command(port: int = STORE_PORT, bind: str = "0.0.0.0", directory: str = STORE_DIR) -> list[str]:
    return ["python", "-m", "http.server", str(port), "--bind", bind, "--directory", directory]


def storage_uri(namespace: str) -> str:
    return f"http://{STORE_NAME}.{namespace}.svc.cluster.local:{STORE_PORT}/{MODEL_FILE}"


def predict_url(address: str) -> str:
    """The v1 protocol's predict endpoint under a component's address (http://host[:port])."""
    return f"{address.rstrip('/')}/v1/models/{MODEL_NAME}:predict"


def parse_response(output: str) -> dict[str, Any]:
    """The server's JSON answer from the client's output; AssertionError with the output if absent."""
    lines = [line for line in output.splitlines() if line.startswith(RESPONSE_MARK)]
    assert lines, f"the client printed no answer; its output:\n{output}"
    answer: dict[str, Any] = json.loads(lines[-1].removeprefix(RESPONSE_MARK))
    return answer


def _security_context() -> dict[str, Any]:
    """The model-server image runs as 1000:1000; the pods are as restricted as the operator's own."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def model_store_pod(image: str) -> dict[str, Any]:
    """Trains the model into an emptyDir (init container), then serves that directory over HTTP."""
    mount = {"name": "models", "mountPath": STORE_DIR}
    train = _container("train", image, ["python", "-c", TRAIN, STORE_DIR]) | {"volumeMounts": [mount]}
    serve = _container("serve", image, serve_command()) | {
        "volumeMounts": [mount | {"readOnly": True}],
        "ports": [{"name": "http", "containerPort": STORE_PORT}],
        "readinessProbe": {"httpGet": {"path": f"/{MODEL_FILE}", "port": STORE_PORT}, "periodSeconds": 2},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": STORE_NAME, "labels": {"app": STORE_NAME}},
        "spec": {
            "securityContext": _security_context(),
            "initContainers": [train],
            "containers": [serve],
            "volumes": [{"name": "models", "emptyDir": {}}],
        },
    }


def model_store_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": STORE_NAME},
        "spec": {
            "selector": {"app": STORE_NAME},
            "ports": [{"name": "http", "port": STORE_PORT, "targetPort": STORE_PORT}],
        },
    }


def client_pod(image: str, url: str) -> dict[str, Any]:
    """Runs CLIENT once against `url` with the three iris rows, and stops."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_NAME},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 300,
            "securityContext": _security_context(),
            "containers": [_container("predict", image, ["python", "-c", CLIENT, url, PREDICT_BODY])],
        },
    }


def inference_service(namespace: str) -> dict[str, Any]:
    """An sklearn InferenceService as a user writes it: the format and where the model is, nothing else."""
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": MODEL_NAME, "namespace": namespace},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri(namespace)},
            },
        },
    }
