"""The API resources Kubeserve reads and writes, and their REST paths."""

from __future__ import annotations

from dataclasses import dataclass

from kubeserve.api.common import API_VERSION


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


INFERENCE_SERVICE = Resource(API_VERSION, "InferenceService", "inferenceservices")
SERVING_RUNTIME = Resource(API_VERSION, "ServingRuntime", "servingruntimes")
CLUSTER_SERVING_RUNTIME = Resource(API_VERSION, "ClusterServingRuntime", "clusterservingruntimes", False)
DEPLOYMENT = Resource("apps/v1", "Deployment", "deployments")
SERVICE = Resource("v1", "Service", "services")
ENDPOINT_SLICE = Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
ENDPOINTS = Resource("v1", "Endpoints", "endpoints")
AUTOSCALER = Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
HTTP_ROUTE = Resource("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
VIRTUAL_SERVICE = Resource("networking.istio.io/v1", "VirtualService", "virtualservices")
SCALED_OBJECT = Resource("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
EVENT = Resource("v1", "Event", "events")
LEASE = Resource("coordination.k8s.io/v1", "Lease", "leases")
CONFIG_MAP = Resource("v1", "ConfigMap", "configmaps")

CHILD_KINDS = {
    r.kind: r
    for r in (DEPLOYMENT, SERVICE, ENDPOINT_SLICE, AUTOSCALER, HTTP_ROUTE, VIRTUAL_SERVICE, SCALED_OBJECT)
}
"""Kinds an InferenceService owns; the applier prunes among these."""
OPTIONAL_KINDS = (HTTP_ROUTE, VIRTUAL_SERVICE, SCALED_OBJECT)
"""Children whose CRDs a cluster may not have (the traffic backends, KEDA): asked for by discovery, then
followed by kopf's watch of their CRDs (`handlers/traffic.py`)."""
