"""The `external` autoscaler class: Kubeserve applies the Deployment without `replicas`, so the count
that another owner sets survives Kubeserve's own changes to the Deployment."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs
from tests.polling import eventually

NAME = "external-iris"


def _service(env: str) -> dict[str, object]:
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "annotations": {"serving.kserve.io/autoscalerClass": "external"}},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model",
                    "env": [{"name": "EDITION", "value": env}],
                }
            }
        },
    }


def test_an_external_owner_keeps_the_replica_count_through_kubeserves_changes(
    kube: k8s.ApiClient, namespace: str, operator: Path
) -> None:
    isvcs = Isvcs(kube, namespace)
    apps = k8s.AppsV1Api(kube)
    deployment = f"{NAME}-predictor"
    isvcs.apply(_service("1"))
    isvcs.wait_ready(NAME)
    assert not k8s.AutoscalingV2Api(kube).list_namespaced_horizontal_pod_autoscaler(namespace).items
    apps.patch_namespaced_deployment_scale(deployment, namespace, {"spec": {"replicas": 3}})

    isvcs.apply(_service("2"))  # a new pod template: Kubeserve applies the Deployment again

    def edition() -> str | None:
        env = apps.read_namespaced_deployment(deployment, namespace).spec.template.spec.containers[0].env
        return next((e.value for e in env or [] if e.name == "EDITION"), None)

    eventually(lambda: edition() == "2", 30, "the new pod template applied")
    isvcs.wait_ready(NAME)
    assert apps.read_namespaced_deployment(deployment, namespace).spec.replicas == 3
