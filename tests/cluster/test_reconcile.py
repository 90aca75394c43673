"""An InferenceService becomes a Deployment, a Service and (when it may scale) an HPA, and a true status."""

from __future__ import annotations

from kubernetes import client as k8s

from kubeserve.planning.naming import LABEL_RUNTIME, LABEL_SERVICE
from tests.cluster.isvc import EXAMPLES, Isvcs, example
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
    assert not pod.init_containers  # kubeserve-server fetches its own model
    location = {(e.name, e.value) for e in pod.containers[0].env}
    assert ("STORAGE_URI", body["spec"]["predictor"]["model"]["storageUri"]) in location
    service = core.read_namespaced_service("sklearn-iris-predictor", namespace)
    assert (service.spec.ports[0].port, service.spec.ports[0].target_port) == (80, 8080)

    events = eventually(
        lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "RuntimeSelected"],
        what="a RuntimeSelected event",
    )
    assert "kubeserve-server" in events[0].message


def test_every_example_becomes_ready(kube: k8s.ApiClient, namespace: str, operator: object) -> None:
    """The lightgbm example reads S3 as the ServiceAccount `models-reader`, as a user would set it up."""
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_service_account(
        namespace,
        {
            "metadata": {
                "name": "models-reader",
                "annotations": {
                    "serving.kserve.io/s3-endpoint": "minio.storage:9000",
                    "serving.kserve.io/s3-usehttps": "0",
                },
            },
            "secrets": [{"name": "s3-credentials"}],
        },
    )
    isvcs = Isvcs(kube, namespace)
    names = [isvcs.apply(example(path.name))["metadata"]["name"] for path in sorted(EXAMPLES.glob("*.yaml"))]
    for name in names:
        isvcs.wait_ready(name, timeout=60)
    # kubeserve-server fetches its own model, with the credentials the initializer would have had.
    server = (
        k8s.AppsV1Api(kube)
        .read_namespaced_deployment("lightgbm-iris-predictor", namespace)
        .spec.template.spec.containers[0]
    )
    assert [source.secret_ref.name for source in server.env_from] == ["s3-credentials"]
    assert {(e.name, e.value) for e in server.env} >= {
        ("S3_ENDPOINT", "minio.storage:9000"),
        ("S3_USE_HTTPS", "0"),
    }


def _deployments_and_hpas(kube: k8s.ApiClient, namespace: str) -> set[str]:
    apps, scaling = k8s.AppsV1Api(kube), k8s.AutoscalingV2Api(kube)
    return {f"Deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(namespace).items} | {
        f"HPA/{h.metadata.name}" for h in scaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
    }


def test_unwanted_children_are_pruned(kube: k8s.ApiClient, namespace: str, operator: object) -> None:
    isvcs = Isvcs(kube, namespace)
    body = example("transformer.yaml")
    body["spec"]["predictor"].update(minReplicas=1, maxReplicas=3)
    isvcs.apply(body)
    isvcs.wait_ready("image-classifier")
    assert _deployments_and_hpas(kube, namespace) == {
        "Deployment/image-classifier-predictor",
        "Deployment/image-classifier-transformer",
        "HPA/image-classifier-predictor",
    }
    del body["spec"]["transformer"]
    body["spec"]["predictor"]["maxReplicas"] = 1
    isvcs.apply(body)
    eventually(
        lambda: _deployments_and_hpas(kube, namespace) == {"Deployment/image-classifier-predictor"},
        what="the transformer and the HPA to be pruned",
    )
    core = k8s.CoreV1Api(kube)
    eventually(
        lambda: (
            {s.metadata.name for s in core.list_namespaced_service(namespace).items}
            == {"image-classifier-predictor"}
        ),
        what="the transformer's Service to be pruned",
    )
    status = isvcs.wait_ready("image-classifier")["status"]
    assert status["url"] == f"http://image-classifier-predictor.{namespace}.svc.cluster.local"


def test_a_runtime_change_re_reconciles_its_services(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(example("sklearn-iris.yaml"))
    assert isvcs.wait_ready("sklearn-iris")["status"]["runtime"]["name"] == "kubeserve-server"
    runtime = {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "ServingRuntime",
        "metadata": {"name": "team-sklearn"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "autoSelect": True, "priority": 1}],
            "containers": [
                {"name": "kserve-container", "image": "team/sklearn-server:1", "args": ["--model={{ name }}"]}
            ],
        },
    }
    k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        "serving.kubeserve.io", "v1beta1", namespace, "servingruntimes", runtime
    )
    apps = k8s.AppsV1Api(kube)

    def switched() -> bool:
        pod = apps.read_namespaced_deployment("sklearn-iris-predictor", namespace).spec.template.spec
        return pod.containers[0].image == "team/sklearn-server:1"

    eventually(switched, what="the predictor to move to the namespaced runtime")

    def runtime_in_status() -> dict[str, str] | None:
        runtime: dict[str, str] = isvcs.get("sklearn-iris").get("status", {}).get("runtime", {})
        return runtime if runtime.get("name") == "team-sklearn" else None

    runtime = eventually(runtime_in_status, what="status.runtime to name the namespaced runtime")
    assert runtime["kind"] == "ServingRuntime"
    isvcs.wait_ready("sklearn-iris")
    assert "namespaced runtimes come first" in runtime["reason"]


def test_deleting_the_service_removes_its_children(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(example("sklearn-iris.yaml"))
    isvcs.wait_ready("sklearn-iris")
    isvcs.delete("sklearn-iris")
    core = k8s.CoreV1Api(kube)
    # The garbage collector learns a new CRD's kind from discovery every 30 s, so right after the CRDs
    # are installed it can take that long before an InferenceService owner can be resolved.
    eventually(
        lambda: (
            not _deployments_and_hpas(kube, namespace) and not core.list_namespaced_service(namespace).items
        ),
        timeout=75,
        what="garbage collection of the Deployment and Service",
    )
