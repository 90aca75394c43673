"""Cluster DNS for the real node: CoreDNS as a host process, reached through the kube-dns Service.

CoreDNS runs on the node itself, not as a pod, and reads Services and
EndpointSlices from the API server with a kubeconfig. The kube-dns Service has
no selector; a hand-made EndpointSlice points it at the address CoreDNS binds,
so kube-proxy sends the cluster DNS IP to the host process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
ENDPOINT_SLICE_NAME = "kube-dns-host"
MANAGED_BY = "kubeserve-devcluster"
"""Any manager but the EndpointSlice controller's name keeps that controller off our slice."""
DNS_PORTS = (("dns", "UDP"), ("dns-tcp", "TCP"))


def corefile(kubeconfig: Path, bind_ip: str, health_port: int, ready_port: int, dns_port: int = 53) -> str:
    """The Corefile: only the cluster's own zones, served from the API, with no upstream at all.

    Nothing may leave the machine, so there is no `forward` (and hence no `loop`
    to guard one). A name in no cluster zone is refused, and a reverse lookup
    of an address the cluster does not know falls through to nothing and gets
    SERVFAIL: pods fail fast instead of waiting on a resolver they cannot reach.
    health and ready listen on loopback only, for the dev cluster's own checks;
    ready answers 503 until the API has been read (CoreDNS serves after 5 s
    without it, answering SERVFAIL for cluster names meanwhile).
    """
    zones = (CLUSTER_DOMAIN, *REVERSE_ZONES)
    return (
        " ".join(f"{zone}:{dns_port}" for zone in zones)
        + " {\n"
        + f"    bind {bind_ip}\n"
        + "    errors\n"
        + f"    health 127.0.0.1:{health_port}\n"
        + f"    ready 127.0.0.1:{ready_port}\n"
        + f"    kubernetes {' '.join(zones)} {{\n"
        + f"        kubeconfig {kubeconfig}\n"
        + "        pods insecure\n"
        + f"        fallthrough {' '.join(REVERSE_ZONES)}\n"
        + "    }\n"
        + "    cache 30\n"
        + "}\n"
    )


def service_manifests(cluster_ip: str, host_ip: str) -> list[dict[str, Any]]:
    """The selector-less kube-dns Service at `cluster_ip` and the EndpointSlice sending it to `host_ip`."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": {"k8s-app": SERVICE_NAME}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [
                {"name": name, "protocol": protocol, "port": 53, "targetPort": 53}
                for name, protocol in DNS_PORTS
            ],
        },
    }
    address_type = "IPv6" if ":" in host_ip else "IPv4"
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": ENDPOINT_SLICE_NAME,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE_NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": address_type,
        "endpoints": [{"addresses": [host_ip], "conditions": {"ready": True}}],
        "ports": [{"name": name, "protocol": protocol, "port": 53} for name, protocol in DNS_PORTS],
    }
    return [service, endpoint_slice]


USER = "system:coredns"
"""CoreDNS's own identity (a client certificate of the cluster CA), granted only what it reads."""


def rbac_manifests() -> list[dict[str, Any]]:
    """Read access for CoreDNS's kubernetes plugin: Services, EndpointSlices, Namespaces and Pods."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": USER},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces", "pods"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }
    return [role, binding]
