"""An InferenceService becomes a Deployment, a Service and (when it may scale) an HPA, and a true status."""

from __future__ import annotations

from kubernetes import client as k8s

from kubeserve.planning.naming import LABEL_RUNTIME, LABEL_SERVICE
from tests.cluster.isvc import Isvcs, example
from tests.polling import eventually


def test_sklearn_example_becomes_ready_with_its_children(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    body = example("sklearn-iris.yaml")
    created = isvcs.apply(body)
    status = isvcs.wait_ready("sklearn-iris")["status"]

    assert status["url"] == f"http://sklearn-iris-predictor.{namespace}.svc.cluster.local"
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["runtime"]["name"] == "kubeserve-server"
    assert "auto-selected for sklearn" in status["runtime"]["reason"]
    predictor = status["components"]["predictor"]
    assert predictor["traffic"] == [
        {"revisionName": predictor["latestCreatedRevision"], "percent": 100, "latestRevision": True}
    ]
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    deployment = apps.read_namespaced_deployment("sklearn-iris-predictor", namespace)
    owner = deployment.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == (
        "InferenceService",
        "sklearn-iris",
        created["metadata"]["uid"],
    )
    assert deployment.metadata.labels[LABEL_SERVICE] == "sklearn-iris"
    assert deployment.metadata.labels[LABEL_RUNTIME] == "kubeserve-server"
    pod = deployment.spec.template.spec
    assert pod.containers[0].image.startswith("ghcr.io/kubeserve/model-server:")
    assert "--model_name=sklearn-iris" in pod.containers[0].args
    assert pod.init_containers[0].args == [body["spec"]["predictor"]["model"]["storageUri"], "/mnt/models"]
    service = core.read_namespaced_service("sklearn-iris-predictor", namespace)
    assert (service.spec.ports[0].port, service.spec.ports[0].target_port) == (80, 8080)

    events = eventually(
        lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "RuntimeSelected"],
        what="a RuntimeSelected event",
    )
    assert "kubeserve-server" in events[0].message
