"""A transformer in front of a predictor, on the real node: requests reach the transformer, which calls
the predictor by the host name the operator gives it (`<isvc>-predictor.<namespace>`)."""

from __future__ import annotations

import httpx
from kubernetes import client as k8s

from kubeserve.planning.naming import LABEL_SERVICE
from tests.cluster.isvc import Isvcs
from tests.node.workloads import Models, image_reference, routed, served
from tests.polling import eventually

# Named features in, the predictor's lists out; the answer says it passed through here.
TRANSFORMER = """
import argparse, json, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
parser = argparse.ArgumentParser()
parser.add_argument("--predictor_host")
parser.add_argument("--model_name")
options = parser.parse_args()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = [[row[f] for f in FEATURES] for row in body["instances"]]
        request = urllib.request.Request(
            f"http://{options.predictor_host}/v1/models/{options.model_name}:predict",
            data=json.dumps({"instances": rows}).encode(), headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
        answer["transformed_by"] = "transformer"
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""


def test_the_transformer_reaches_the_predictor_by_its_dns_name_and_deleting_removes_the_pods(
    node_kube: k8s.ApiClient, installed_operator: str, node_namespace: str, models: Models
) -> None:
    isvc = served("iris-tx", "sklearn", "s3://models/sklearn/iris")
    isvc["spec"]["transformer"] = {
        "containers": [
            {
                "name": "kserve-container",
                "image": image_reference("model-server"),
                "imagePullPolicy": "Never",
                "command": ["python", "-c", TRANSFORMER],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }
        ]
    }
    isvcs = Isvcs(node_kube, node_namespace)
    isvcs.apply(isvc)
    isvcs.wait_ready("iris-tx", timeout=180)
    core = k8s.CoreV1Api(node_kube)
    # The transformer calls the predictor's Service, which kube-proxy routes a moment after Ready too.
    routed(core.read_namespaced_service("iris-tx-predictor", node_namespace).spec.cluster_ip)
    address = core.read_namespaced_service("iris-tx-transformer", node_namespace)
    named = [
        dict(zip(("sepal_length", "sepal_width", "petal_length", "petal_width"), row, strict=True))
        for row in models.inputs
    ]
    url = f"http://{address.spec.cluster_ip}/v1/models/iris-tx:predict"

    def answer() -> httpx.Response | None:
        """The transformer's Service routes a moment after it is Ready (kube-proxy's next sync)."""
        try:
            return httpx.post(url, json={"instances": named}, timeout=20)
        except httpx.ConnectError:
            return None

    response = eventually(answer, timeout=30, what="the transformer's Service to answer")
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": models.sklearn_expected, "transformed_by": "transformer"}

    isvcs.delete("iris-tx")
    eventually(
        lambda: not core.list_namespaced_pod(node_namespace, label_selector=f"{LABEL_SERVICE}=iris-tx").items,
        timeout=60,
        what="the service's pods to be gone after its deletion",
    )
