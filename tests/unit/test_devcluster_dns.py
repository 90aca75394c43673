"""The real node's cluster DNS: a Corefile that never leaves the machine, and the Service that reaches it."""

from __future__ import annotations

from pathlib import Path

from kubeserve.devcluster import dns

KUBECONFIG = Path("/var/lib/kubeserve/coredns.kubeconfig")


def _corefile() -> str:
    return dns.corefile(KUBECONFIG, "10.88.0.1", health_port=18080, ready_port=18181)


def test_corefile_has_no_upstream() -> None:
    corefile = _corefile()
    assert "forward" not in corefile
    assert "loop" not in corefile


def test_corefile_binds_the_address_on_port_53() -> None:
    lines = [line.strip() for line in _corefile().splitlines()]
    assert "bind 10.88.0.1" in lines
    assert lines[0] == "cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {"


def test_corefile_reads_the_api_with_the_kubeconfig() -> None:
    lines = [line.strip() for line in _corefile().splitlines()]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in lines
    assert f"kubeconfig {KUBECONFIG}" in lines
    assert "pods insecure" in lines
    assert "fallthrough in-addr.arpa ip6.arpa" in lines


def test_corefile_checks_listen_on_loopback() -> None:
    lines = [line.strip() for line in _corefile().splitlines()]
    assert "health 127.0.0.1:18080" in lines
    assert "ready 127.0.0.1:18181" in lines
    assert {"errors", "cache 30"} <= set(lines)


def test_corefile_braces_balance() -> None:
    corefile = _corefile()
    assert corefile.count("{") == corefile.count("}") == 2


def test_service_has_no_selector_and_the_cluster_ip() -> None:
    service, _ = dns.service_manifests("10.96.0.10", "10.88.0.1")
    assert (service["kind"], service["metadata"]["namespace"]) == ("Service", "kube-system")
    assert service["metadata"]["name"] == "kube-dns"
    assert "selector" not in service["spec"]
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    ports = {(p["name"], p["protocol"], p["port"]) for p in service["spec"]["ports"]}
    assert ports == {("dns", "UDP", 53), ("dns-tcp", "TCP", 53)}


def test_endpoint_slice_points_the_service_at_the_host() -> None:
    service, endpoint_slice = dns.service_manifests("10.96.0.10", "10.88.0.1")
    assert endpoint_slice["kind"] == "EndpointSlice"
    assert endpoint_slice["metadata"]["name"] == "kube-dns-host"
    assert endpoint_slice["metadata"]["namespace"] == service["metadata"]["namespace"]
    labels = endpoint_slice["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == service["metadata"]["name"]
    assert labels["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"
    assert endpoint_slice["addressType"] == "IPv4"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [["10.88.0.1"]]
    slice_ports = {(p["name"], p["protocol"], p["port"]) for p in endpoint_slice["ports"]}
    assert slice_ports == {(p["name"], p["protocol"], p["targetPort"]) for p in service["spec"]["ports"]}


def test_an_ipv6_host_gets_an_ipv6_slice() -> None:
    _, endpoint_slice = dns.service_manifests("fd00::a", "fd00::1")
    assert endpoint_slice["addressType"] == "IPv6"
