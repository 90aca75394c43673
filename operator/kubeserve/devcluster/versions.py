"""The one place that pins every control-plane component the dev cluster builds.

Bumping a version here changes the cache directory, so a new build happens
beside the old one instead of mixing binaries of two releases.
"""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES = "v1.36.3"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
GATEWAY_API = "v1.6.3"
HELM = "v3.22.0"
# DNS for the real node, run as a host process there rather than as a pod.
COREDNS = "v1.15.0"
# Only for the kind-based e2e suite, built on demand where a Docker engine runs.
KIND = "v0.33.0"
# KEDA's operator and metrics adapter, for the control-plane tests of the keda autoscaler class. v2.21
# needs Go 1.27; v2.20 builds with this machine's Go 1.26.
KEDA = "v2.20.2"


@dataclass(frozen=True)
class GoBinary:
    """A binary built from a Go module: the package to build and the name it gets."""

    name: str
    package: str


KUBERNETES_BINARIES = (
    GoBinary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    GoBinary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    GoBinary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
    # The real node's agents.
    GoBinary("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
    GoBinary("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
)
ETCD_BINARY = GoBinary("etcd", "go.etcd.io/etcd/server/v3")
KWOK_BINARY = GoBinary("kwok", "sigs.k8s.io/kwok/cmd/kwok")
HELM_BINARY = GoBinary("helm", "helm.sh/helm/v3/cmd/helm")
COREDNS_BINARY = GoBinary("coredns", "github.com/coredns/coredns")
KIND_BINARY = GoBinary("kind", "sigs.k8s.io/kind")
KEDA_BINARIES = (
    GoBinary("keda-operator", "github.com/kedacore/keda/v2/cmd/operator"),
    GoBinary("keda-adapter", "github.com/kedacore/keda/v2/cmd/adapter"),
)


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """Staging modules (k8s.io/api, ...) are tagged v0.X.Y for Kubernetes v1.X.Y."""
    return "v0." + kubernetes.removeprefix("v1.")


def as_text() -> str:
    """Versions as `kubeserve dev status` prints them."""
    return (
        f"kubernetes {KUBERNETES}, etcd {ETCD}, kwok {KWOK}, gateway-api {GATEWAY_API}, helm {HELM}, "
        f"coredns {COREDNS}, keda {KEDA}"
    )
