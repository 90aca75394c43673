"""Names and labels of the objects an InferenceService owns.

Every child carries the labels that tie it to its service, component and
revision (Kubeserve's own, plus KServe's, so that tooling written for KServe
finds the pods), and the owner reference that lets garbage collection remove it
with the service.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.common import API_VERSION

GROUP_PREFIX = "serving.kubeserve.io"
LABEL_SERVICE = f"{GROUP_PREFIX}/inferenceservice"
LABEL_COMPONENT = "component"
LABEL_REVISION = f"{GROUP_PREFIX}/revision"
LABEL_RUNTIME = f"{GROUP_PREFIX}/runtime"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubeserve"
KSERVE_LABEL_SERVICE = "serving.kserve.io/inferenceservice"


def component_name(service: str, component: str) -> str:
    """`<isvc>-<component>`, the name of a component's Deployment and Service (as in KServe)."""
    return f"{service}-{component}"


def selector_labels(service: str, component: str) -> dict[str, str]:
    """Labels that select a component's pods; they never change, so Deployment selectors stay valid."""
    return {LABEL_SERVICE: service, LABEL_COMPONENT: component}


def child_labels(service: str, component: str, runtime: str | None = None) -> dict[str, str]:
    labels = {
        **selector_labels(service, component),
        KSERVE_LABEL_SERVICE: service,
        LABEL_MANAGED_BY: MANAGER,
    }
    if runtime:
        labels[LABEL_RUNTIME] = runtime
    return labels


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any]
) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]}
