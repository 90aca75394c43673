"""The service a request is for, read from its Host header: a name as cluster DNS gives it, or an IP."""

from __future__ import annotations

from kubeserve_activator.interfaces import Target, Targets


def service_of_host(host: str, cluster_domain: str = "cluster.local") -> tuple[str, str] | None:
    """(namespace, name) for `<svc>.<ns>`, `<svc>.<ns>.svc` or `<svc>.<ns>.svc.<cluster domain>`,
    with or without a port; None for any other host (an IP, a bare name, another domain)."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("["):  # an IPv6 literal names no service
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    labels = name.split(".")
    suffixes: tuple[list[str], ...] = ([], ["svc"], ["svc", *cluster_domain.lower().split(".")])
    for suffix in suffixes:
        if len(labels) == 2 + len(suffix) and labels[2:] == suffix and all(labels[:2]):
            return labels[1], labels[0]
    return None


def address_of_host(host: str) -> str:
    """A Host header without its port: `10.0.0.7:8080` gives `10.0.0.7`, `[fd00::7]:80` `fd00::7`."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def target_of_host(targets: Targets, host: str, cluster_domain: str) -> Target | None:
    """The served service a Host header (or an HTTP/2 :authority) names, by DNS name or ClusterIP."""
    service = service_of_host(host, cluster_domain)
    return targets.find(*service) if service else targets.find_address(address_of_host(host))
