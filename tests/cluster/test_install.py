"""`helm install` on a real control plane: CRDs Established, the operator rolled out, RBAC as intended.

The chart goes into a fresh namespace with `runtimes.enabled=false`: the shipped
ClusterServingRuntimes are cluster-wide and would change runtime selection for
the other tests of the session, so they are sent as server-side apply dry runs
with strict field validation instead, which the API server checks in full
without keeping them. The operator pod never runs its image (kwok marks pods
Running), which is enough to prove the Deployment, its ServiceAccount and its
ConfigMap fit together.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from kubeserve.devcluster import build
from tests.polling import eventually
from tests.unit.test_chart import REQUIRED_GRANTS, RUNTIMES

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubeserve"
RELEASE = "kubeserve"
ACCOUNT = "kubeserve-operator"


def helm(kubeconfig: str, namespace: str, *args: str) -> None:
    path = build.binary_path("helm")
    assert path.exists(), f"{path} is missing: run `kubeserve dev build`"
    command = [str(path), *args, "--namespace", namespace, "--kubeconfig", kubeconfig]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def release(kubeconfig: str, namespace: str) -> Iterator[str]:
    """The chart installed in a fresh namespace; uninstalled after, so its ClusterRole goes too."""
    helm(kubeconfig, namespace, "install", RELEASE, str(CHART), "--set", "runtimes.enabled=false")
    try:
        yield namespace
    finally:
        helm(kubeconfig, namespace, "uninstall", RELEASE, "--wait")


def test_install_establishes_crds_and_rolls_out_the_operator(kube: k8s.ApiClient, release: str) -> None:
    extensions = k8s.ApiextensionsV1Api(kube)
    names = [
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in sorted((CHART / "crds").glob("*.yaml"))
    ]
    assert len(names) == 3, "the chart should carry the InferenceService and both runtime CRDs"

    def established() -> list[str]:
        ready = []
        for name in names:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                ready.append(name)
        return ready if len(ready) == len(names) else []

    eventually(established, what="every chart CRD Established")

    apps = k8s.AppsV1Api(kube)
    config = k8s.CoreV1Api(kube).read_namespaced_config_map("kubeserve-config", release).data or {}
    assert "acceleratorClasses" in yaml.safe_load(config["config.yaml"])

    def available() -> bool:
        status = apps.read_namespaced_deployment_status(ACCOUNT, release).status
        conditions = (status.conditions if status else None) or []
        return any(c.type == "Available" and c.status == "True" for c in conditions)

    eventually(available, timeout=60, what="the operator Deployment Available")


def can(
    kube: k8s.ApiClient, namespace: str, group: str, resource: str, verb: str, where: str = "models"
) -> bool:
    """Whether the operator's ServiceAccount may do verb on resource in namespace `where` ("" for all)."""
    plural, _, subresource = resource.partition("/")
    attributes = {"group": group, "resource": plural, "subresource": subresource, "verb": verb}
    spec = k8s.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{ACCOUNT}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
        resource_attributes=k8s.V1ResourceAttributes(**attributes, namespace=where),
    )
    review = k8s.AuthorizationV1Api(kube).create_subject_access_review(k8s.V1SubjectAccessReview(spec=spec))
    return review.status is not None and review.status.allowed


def test_operator_account_may_do_its_job_but_never_read_secrets(kube: k8s.ApiClient, release: str) -> None:
    denied = [grant for grant in REQUIRED_GRANTS if not can(kube, release, *grant)]
    assert not denied
    for verb in ("get", "list", "watch"):
        for where in ("models", release, ""):
            assert not can(kube, release, "", "secrets", verb, where), f"the operator may {verb} secrets"


def test_shipped_runtimes_are_accepted_by_the_api_server(kube: k8s.ApiClient, release: str) -> None:
    custom = k8s.CustomObjectsApi(kube)
    refused = {}
    for name, runtime in RUNTIMES.items():
        try:
            custom.patch_cluster_custom_object(
                "serving.kubeserve.io",
                "v1beta1",
                "clusterservingruntimes",
                name,
                runtime,
                dry_run="All",
                field_manager="kubeserve-tests",
                force=True,
                field_validation="Strict",
                _content_type="application/apply-patch+yaml",
            )
        except k8s.ApiException as error:
            refused[name] = error.body
    assert not refused
