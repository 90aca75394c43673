"""Canary rollouts on the real control plane: revisions, the split stepped through 10, 50, 100 and 0.

The first tests run without Gateway API, where one Service spans both tracks
and the split is the replica ratio. One installs a stand-in VirtualService CRD
for itself, so that the operator routes by Istio weights. The last ones install
the Gateway API standard CRDs (the pinned version the dev cluster builds) for
the rest of this module only, so that the operator routes by HTTPRoute weights;
the CRDs are removed again before any other module runs, whose tests expect no
gateway. The operator follows the CRDs as they come and go, without a restart.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubeserve.devcluster import build
from kubeserve.devcluster.build import SIMULATE_ANNOTATION
from kubeserve.planning.naming import LABEL_REVISION
from kubeserve.planning.traffic import MIRROR_ANNOTATION
from tests.cluster.isvc import GROUP, VERSION, Isvcs
from tests.polling import eventually

NAME = "iris"
Split = list[tuple[str, int]]


def isvc(
    version: int,
    percent: int | None = None,
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An sklearn service whose pod template differs by `version` (a new revision per version)."""
    predictor: dict[str, Any] = {
        "minReplicas": replicas,
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": "gs://models/iris",
            "env": [{"name": "MODEL_VERSION", "value": str(version)}],
        },
    }
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    if pod_annotations:
        predictor["annotations"] = pod_annotations
    metadata: dict[str, Any] = {"name": NAME}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def predictor_status(isvcs: Isvcs) -> dict[str, Any]:
    status: dict[str, Any] = isvcs.get(NAME).get("status", {}).get("components", {}).get("predictor", {})
    return status


def split(isvcs: Isvcs) -> Split:
    return [(t["revisionName"], t["percent"]) for t in predictor_status(isvcs).get("traffic", [])]


def wait_split(isvcs: Isvcs, expected: Split) -> None:
    eventually(lambda: split(isvcs) == expected, what=f"traffic {expected}, saw {split(isvcs)}")


def start(isvcs: Isvcs, body: dict[str, Any]) -> str:
    """Apply the first version, wait until it is Ready with all the traffic; its revision."""
    isvcs.apply(body)
    isvcs.wait_ready(NAME)
    revision: str = eventually(lambda: predictor_status(isvcs).get("latestRolledoutRevision"))
    wait_split(isvcs, [(revision, 100)])
    return revision


def new_revision(isvcs: Isvcs, body: dict[str, Any], old: str) -> str:
    isvcs.apply(body)
    found: str = eventually(
        lambda: (r := predictor_status(isvcs).get("latestCreatedRevision")) != old and r,
        what="a new revision",
    )
    return found


def deployments(kube: k8s.ApiClient, namespace: str) -> dict[str, tuple[int, str]]:
    """Deployment name -> (replicas, revision digest) of the service's Deployments."""
    listed = k8s.AppsV1Api(kube).list_namespaced_deployment(namespace).items
    return {
        d.metadata.name: (d.spec.replicas, d.spec.template.metadata.labels[LABEL_REVISION]) for d in listed
    }


def wait_deployments(kube: k8s.ApiClient, namespace: str, expected: dict[str, tuple[int, str]]) -> None:
    eventually(
        lambda: deployments(kube, namespace) == expected,
        what=f"Deployments {expected}, saw {deployments(kube, namespace)}",
    )


def digest(revision: str) -> str:
    return revision.rsplit("-", 1)[1]


def columns(kubeconfig: str, namespace: str) -> dict[str, str]:
    """`kubectl get isvc` as a person sees it: header -> value, cut at the header's columns."""
    header, row = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "-n", namespace, "get", "isvc", NAME],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    return {header[a:b].strip(): row[a:b].strip() for a, b in itertools.pairwise([*starts, len(row)])}


def test_revisions_are_named_from_the_template_and_stable_across_changes(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    first = start(isvcs, isvc(1))
    assert re.fullmatch(rf"{NAME}-predictor-[0-9a-f]{{10}}", first)
    assert deployments(kube, namespace) == {f"{NAME}-predictor": (1, digest(first))}
    second = new_revision(isvcs, isvc(2), first)
    wait_split(isvcs, [(second, 100)])
    eventually(lambda: predictor_status(isvcs).get("previousRolledoutRevision") == first)
    isvcs.apply(isvc(1))
    wait_split(isvcs, [(first, 100)])
    assert predictor_status(isvcs)["latestCreatedRevision"] == first


def test_canary_steps_through_10_50_100_then_0_by_replica_ratio(
    kube: k8s.ApiClient, kubeconfig: str, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    stable, canary = f"{NAME}-predictor", f"{NAME}-predictor-canary"
    v1 = start(isvcs, isvc(1, replicas=10))
    wait_deployments(kube, namespace, {stable: (10, digest(v1))})

    v2 = new_revision(isvcs, isvc(2, 10, replicas=10), v1)
    wait_split(isvcs, [(v1, 90), (v2, 10)])
    wait_deployments(kube, namespace, {stable: (9, digest(v1)), canary: (1, digest(v2))})
    assert (columns(kubeconfig, namespace)["PREV"], columns(kubeconfig, namespace)["LATEST"]) == ("90", "10")
    isvcs.wait_condition(NAME, "PredictorCanaryReady")

    isvcs.apply(isvc(2, 50, replicas=10))
    wait_split(isvcs, [(v1, 50), (v2, 50)])
    wait_deployments(kube, namespace, {stable: (5, digest(v1)), canary: (5, digest(v2))})

    isvcs.apply(isvc(2, 100, replicas=10))
    wait_split(isvcs, [(v2, 100)])
    wait_deployments(kube, namespace, {stable: (10, digest(v2))})
    status = eventually(lambda: (s := predictor_status(isvcs)).get("latestRolledoutRevision") == v2 and s)
    assert status["previousRolledoutRevision"] == v1
    assert (columns(kubeconfig, namespace)["PREV"], columns(kubeconfig, namespace)["LATEST"]) == ("", "100")

    v3 = new_revision(isvcs, isvc(3, 10, replicas=10), v2)
    wait_split(isvcs, [(v2, 90), (v3, 10)])
    isvcs.apply(isvc(3, 0, replicas=10))
    wait_split(isvcs, [(v2, 100), (v3, 0)])
    wait_deployments(kube, namespace, {stable: (10, digest(v2))})
    isvcs.wait_ready(NAME)


def test_a_change_during_a_canary_replaces_the_canary_not_the_stable(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    v1 = start(isvcs, isvc(1))
    v2 = new_revision(isvcs, isvc(2, 20), v1)
    wait_split(isvcs, [(v1, 80), (v2, 20)])
    v3 = new_revision(isvcs, isvc(3, 20), v2)
    wait_split(isvcs, [(v1, 80), (v3, 20)])
    wait_deployments(
        kube, namespace, {f"{NAME}-predictor": (1, digest(v1)), f"{NAME}-predictor-canary": (1, digest(v3))}
    )


def test_each_track_has_an_hpa_bounded_by_its_share(
    kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    scaled = isvc(1)
    scaled["spec"]["predictor"]["maxReplicas"] = 10
    v1 = start(isvcs, scaled)
    canary = isvc(2, 20)
    canary["spec"]["predictor"]["maxReplicas"] = 10
    v2 = new_revision(isvcs, canary, v1)
    wait_split(isvcs, [(v1, 80), (v2, 20)])
    autoscaling = k8s.AutoscalingV2Api(kube)

    def bounds() -> dict[str, tuple[int, int]]:
        listed = autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
        return {h.metadata.name: (h.spec.min_replicas, h.spec.max_replicas) for h in listed}

    expected = {f"{NAME}-predictor": (1, 8), f"{NAME}-predictor-canary": (1, 2)}
    eventually(lambda: bounds() == expected, what=f"HPA bounds {expected}, saw {bounds()}")


def test_a_canary_percent_over_100_is_refused_by_the_api_server(kube: k8s.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as refused:
        Isvcs(kube, namespace).apply(isvc(1, 150))
    assert refused.value.status == 422
    assert "canaryTrafficPercent" in refused.value.body


def crd_names(kube: k8s.ApiClient, established: bool = False) -> set[str]:
    """Names of the CRDs the API server has (only the Established ones, if asked)."""
    return {
        crd.metadata.name
        for crd in k8s.ApiextensionsV1Api(kube).list_custom_resource_definition().items
        if not established
        or any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
    }


def wait_crds(kube: k8s.ApiClient, names: set[str], present: bool) -> None:
    """Until every CRD in `names` is Established, or until all are gone."""
    eventually(
        lambda: names <= crd_names(kube, established=True) if present else not names & crd_names(kube),
        timeout=60,
        what=f"CRDs {sorted(names)} {'Established' if present else 'deleted'}",
    )


@pytest.fixture
def istio_api(kube: k8s.ApiClient) -> Iterator[None]:
    """A stand-in VirtualService CRD (schema-less: Istio's own CRDs are not part of the dev cluster)."""
    name = "virtualservices.networking.istio.io"
    extensions = k8s.ApiextensionsV1Api(kube)
    extensions.create_custom_resource_definition(
        {
            "metadata": {"name": name},
            "spec": {
                "group": "networking.istio.io",
                "scope": "Namespaced",
                "names": {
                    "kind": "VirtualService",
                    "plural": "virtualservices",
                    "singular": "virtualservice",
                },
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    wait_crds(kube, {name}, present=True)
    yield
    extensions.delete_custom_resource_definition(name)
    wait_crds(kube, {name}, present=False)


def virtual_service_weights(kube: k8s.ApiClient, namespace: str) -> list[tuple[str, int]]:
    try:
        found = k8s.CustomObjectsApi(kube).get_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "virtualservices", NAME
        )
    except ApiException as error:
        if error.status == 404:
            return []
        raise
    return [(r["destination"]["host"], r["weight"]) for r in found["spec"]["http"][0]["route"]]


@pytest.mark.cluster_wide("creates and deletes the VirtualService CRD")
def test_istio_virtual_service_weights_when_only_istio_is_served(
    istio_api: None, kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    host = f"{NAME}-predictor-{{}}.{namespace}.svc.cluster.local"
    v1 = start(isvcs, isvc(1))
    eventually(lambda: virtual_service_weights(kube, namespace) == [(host.format("stable"), 100)])
    assert isvcs.get(NAME)["status"]["url"] == f"http://{NAME}-{namespace}.example.com"
    new_revision(isvcs, isvc(2, 30), v1)
    eventually(
        lambda: (
            virtual_service_weights(kube, namespace)
            == [(host.format("stable"), 70), (host.format("canary"), 30)]
        ),
        what="VirtualService weights 70/30",
    )


GATEWAY_API_CRDS = pytest.mark.cluster_wide(
    "installs and deletes the Gateway API CRDs, and with them every HTTPRoute of the cluster"
)


@pytest.fixture(scope="module")
def gateway_api(kubeconfig: str, kube: k8s.ApiClient) -> Iterator[None]:
    """Gateway API's standard CRDs for the rest of this module; removed (and gone) afterwards."""
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    crds = str(build.gateway_api_crds_file())
    names = {
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(build.gateway_api_crds_file().read_text())
        if doc and doc["kind"] == "CustomResourceDefinition"
    }
    subprocess.run([*kubectl, "apply", "--server-side", "-f", crds], check=True, capture_output=True)
    wait_crds(kube, names, present=True)
    yield
    subprocess.run([*kubectl, "delete", "--wait=false", "-f", crds], check=True, capture_output=True)
    wait_crds(kube, names, present=False)


def route(kube: k8s.ApiClient, namespace: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = k8s.CustomObjectsApi(kube).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", NAME
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def weights(kube: k8s.ApiClient, namespace: str) -> list[tuple[str, int]]:
    found = route(kube, namespace)
    rule = found["spec"]["rules"][0] if found else {}
    return [(ref["name"], ref["weight"]) for ref in rule.get("backendRefs", [])]


def wait_weights(kube: k8s.ApiClient, namespace: str, expected: list[tuple[str, int]]) -> dict[str, Any]:
    eventually(
        lambda: weights(kube, namespace) == expected,
        what=f"HTTPRoute weights {expected}, saw {weights(kube, namespace)}",
    )
    found = route(kube, namespace)
    assert found is not None
    return found


@GATEWAY_API_CRDS
def test_http_route_weights_follow_the_canary_and_mirror_to_it(
    gateway_api: None, kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    stable, canary = f"{NAME}-predictor-stable", f"{NAME}-predictor-canary"
    v1 = start(isvcs, isvc(1))
    found = wait_weights(kube, namespace, [(stable, 100)])
    assert found["spec"]["hostnames"] == [f"{NAME}-{namespace}.example.com"]
    assert found["spec"]["parentRefs"][0]["name"] == "kubeserve-gateway"
    assert isvcs.get(NAME)["status"]["url"] == f"http://{NAME}-{namespace}.example.com"
    core = k8s.CoreV1Api(kube)
    assert (
        core.read_namespaced_service(stable, namespace).spec.selector["serving.kubeserve.io/track"]
        == "stable"
    )

    v2 = new_revision(isvcs, isvc(2, 10), v1)
    wait_weights(kube, namespace, [(stable, 90), (canary, 10)])
    wait_split(isvcs, [(v1, 90), (v2, 10)])
    assert (
        core.read_namespaced_service(canary, namespace).spec.selector["serving.kubeserve.io/track"]
        == "canary"
    )

    found = wait_weights(kube, namespace, [(stable, 90), (canary, 10)])
    assert "filters" not in found["spec"]["rules"][0]
    isvcs.apply(isvc(2, 50, annotations={MIRROR_ANNOTATION: "100"}))
    found = wait_weights(kube, namespace, [(stable, 50), (canary, 50)])
    mirror = eventually(lambda: (route(kube, namespace) or {})["spec"]["rules"][0].get("filters"))
    assert mirror == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": canary, "port": 80},
                "percent": 100,
            },
        }
    ]

    isvcs.apply(isvc(2, 100))
    wait_weights(kube, namespace, [(stable, 100)])
    wait_split(isvcs, [(v2, 100)])
    eventually(lambda: canary not in {s.metadata.name for s in core.list_namespaced_service(namespace).items})

    v3 = new_revision(isvcs, isvc(3, 10), v2)
    wait_weights(kube, namespace, [(stable, 90), (canary, 10)])
    isvcs.apply(isvc(3, 0))
    wait_weights(kube, namespace, [(stable, 100)])
    wait_split(isvcs, [(v2, 100), (v3, 0)])


@GATEWAY_API_CRDS
def test_a_canary_that_never_becomes_ready_keeps_all_traffic_on_stable(
    gateway_api: None, kube: k8s.ApiClient, namespace: str, operator: object
) -> None:
    isvcs = Isvcs(kube, namespace)
    v1 = start(isvcs, isvc(1))
    broken = isvc(2, 30, pod_annotations={SIMULATE_ANNOTATION: "never-ready"})
    v2 = new_revision(isvcs, broken, v1)
    condition = isvcs.wait_condition(
        NAME,
        "PredictorCanaryReady",
        "False",
        "RolloutInProgress",
        message_has="is running but not Ready: containers with unready status: [kserve-container]",
    )
    assert f"canary {v2} gets 0% of the traffic until it is Ready (30% requested)" in condition["message"]
    assert f"{v1} keeps 100%" in condition["message"]
    assert split(isvcs) == [(v1, 100), (v2, 0)]
    assert weights(kube, namespace) == [(f"{NAME}-predictor-stable", 100), (f"{NAME}-predictor-canary", 0)]
    assert isvcs.condition(NAME, "PredictorReady")["status"] == "True"  # type: ignore[index]
    assert isvcs.condition(NAME, "Ready")["status"] == "True"  # type: ignore[index]

    v3 = new_revision(isvcs, isvc(3, 30), v2)
    wait_split(isvcs, [(v1, 70), (v3, 30)])
    wait_weights(kube, namespace, [(f"{NAME}-predictor-stable", 70), (f"{NAME}-predictor-canary", 30)])
