"""The dev cluster's address plan, in one place: every range it makes up, which must never leave the
machine (the real node routes them all into a sink; see `host_network`)."""

from __future__ import annotations

# A /16, so that a benchmark's thousand InferenceServices (a Service each) get cluster IPs.
SERVICE_CIDR = "10.0.0.0/16"
API_SERVICE_IP = "10.0.0.1"
"""The first address of the service range: the `kubernetes` Service's cluster IP."""
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_RANGE = "10.240.0.0/13"
"""Every address the dev cluster makes up besides services: kwok's nodes and pods, real pods, the node.
Kept small, as the real node routes it into a sink: a /12 took in this VM's resolver (10.255.255.53)."""
KWOK_NODE_IP = "10.240.0.1"
KWOK_POD_CIDR = "10.244.0.0/16"
POD_CIDR = "10.245.0.0/24"
"""The real node's pods, on its CNI bridge."""
NODE_NAME = "real-0"
NODE_IP = "10.246.0.1"
"""The real node's InternalIP: kubelet, CoreDNS and (with a real node) the API server bind it."""
