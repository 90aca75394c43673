"""The real node's agent configurations agree with each other and with what this VM needs."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from kubeserve.devcluster import addresses, pause, pki
from kubeserve.devcluster.real_node import (
    NodeFiles,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
)

FILES = NodeFiles(Path("/var/tmp/node"))
SERVING = pki.KeyPair(Path("/pki/kubelet.crt"), Path("/pki/kubelet.key"))


def test_kubelet_talks_to_the_socket_containerd_serves() -> None:
    containerd = tomllib.loads(containerd_config(FILES))
    kubelet = kubelet_config(FILES, Path("/pki/ca.crt"), SERVING, 10250, 10248)
    assert kubelet["containerRuntimeEndpoint"] == "unix://" + containerd["grpc"]["address"]


def test_containerd_fits_this_vm_and_has_its_sandbox_image_locally() -> None:
    cri = tomllib.loads(containerd_config(FILES))["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True, "root here lacks CAP_SYS_RESOURCE"
    assert cri["sandbox_image"] == pause.PAUSE_IMAGE, "the one image built locally by pause.py"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"] == str(FILES.cni_conf_dir)


def test_kubelet_runs_on_cgroup_v1_with_cgroupfs_and_real_authentication() -> None:
    kubelet = kubelet_config(FILES, Path("/pki/ca.crt"), SERVING, 10250, 10248)
    assert (kubelet["cgroupDriver"], kubelet["failCgroupV1"]) == ("cgroupfs", False)
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}
    assert kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["address"] == addresses.NODE_IP
    assert kubelet["clusterDNS"] == [addresses.DNS_SERVICE_IP]


def test_every_address_the_node_uses_stays_inside_the_routed_ranges() -> None:
    """Anything outside these ranges would follow the default route off the machine."""
    routed = [ipaddress.ip_network(addresses.SERVICE_CIDR), ipaddress.ip_network(addresses.CLUSTER_RANGE)]
    pods = ipaddress.ip_network(cni_config(FILES)["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])
    made_up = [
        ipaddress.ip_address(ip)
        for ip in (addresses.NODE_IP, addresses.DNS_SERVICE_IP, addresses.KWOK_NODE_IP)
    ]
    assert all(any(address in net for net in routed) for address in made_up)
    assert any(pods.subnet_of(net) for net in routed if net.version == pods.version)
    assert ipaddress.ip_network(addresses.KWOK_POD_CIDR).subnet_of(routed[1])
    assert kube_proxy_config(Path("/k"), 1, 2)["clusterCIDR"] == str(pods)
