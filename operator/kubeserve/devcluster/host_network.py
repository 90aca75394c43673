"""The host side of the real node: the routes that keep cluster traffic on this machine (the ranges
are in `addresses`), and the removal of every piece of host-global state the node leaves behind.

Until kube-proxy has synced, a packet for a ClusterIP (or a kwok pod's made-up IP) follows the default
route out of the machine. Blackhole routes would stop that, but they also fail the host's own connects
before kube-proxy's DNAT can rewrite them; so the cluster's ranges are routed into `kshole0`, a bridge
with no ports, where a packet that nothing rewrites is dropped. Pods may reach the cluster's ranges and
nothing else: a FORWARD rule rejects the rest.

These are host-global (routes, the bridges, iptables chains, `/kubepods` cgroups), so only one real node
runs at a time (`NodeClaim`), and whatever a crashed run left is swept before the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubeserve.devcluster.addresses import CLUSTER_RANGE, NODE_IP, POD_CIDR, SERVICE_CIDR

SINK = "kshole0"
BRIDGE = "ksbr0"
GUARD_CHAIN = "KUBESERVE-EGRESS"
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
"""Set to 1 while the node runs (forwarding, and iptables seeing bridged pod-to-pod traffic for
kube-proxy's hairpin NAT); restored afterwards from the saved values."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "kubepods"
CHAIN_PREFIXES = ("KUBE-", "CNI-", GUARD_CHAIN)
"""iptables chains of kube-proxy, of kubelet (which `kube-proxy --cleanup` leaves), of CNI, and ours."""


class HostError(RuntimeError):
    """The machine cannot host a real node; the message says why in one line."""


def unsupported_reason() -> str | None:
    """Why this machine cannot run a real node, or None when it can."""
    if os.uname().sysname != "Linux":
        return "a real node needs Linux"
    if os.geteuid() != 0:
        return "a real node needs root (it configures routes, iptables, cgroups and mounts)"
    if not (CGROUP_ROOT / "memory").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").is_file():
        return f"a real node needs cgroups, and {CGROUP_ROOT} has none"
    for tool in ("containerd", "runc", "ip", "iptables"):
        if shutil.which(tool) is None:
            return f"a real node needs `{tool}` (apt install containerd runc iproute2 iptables)"
    if not cni_bin_dir().joinpath("bridge").is_file():
        return "a real node needs the CNI plugins (apt install containernetworking-plugins)"
    return None


def cni_bin_dir() -> Path:
    return Path("/usr/lib/cni")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HostError(f"`{' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


@dataclass
class HostNetwork:
    """Sets up and removes the node's host state; `state_file` keeps the sysctls it changed."""

    state_file: Path

    def up(self) -> None:
        """The sink, its routes and the egress guard, before any cluster process starts."""
        clash = conflict()
        if clash:
            raise HostError(clash)
        self._save_sysctls()
        _run("ip", "link", "add", SINK, "type", "bridge")
        _run("ip", "link", "set", SINK, "up")
        _run("ip", "addr", "add", f"{NODE_IP}/32", "dev", SINK)
        for cidr in (SERVICE_CIDR, CLUSTER_RANGE):
            _run("ip", "route", "replace", cidr, "dev", SINK)
        _run("iptables", "-w", "-N", GUARD_CHAIN)
        _run("iptables", "-w", "-A", GUARD_CHAIN, "-s", POD_CIDR, "!", "-d", CLUSTER_RANGE, "-j", "REJECT")
        _run("iptables", "-w", "-I", "FORWARD", "-j", GUARD_CHAIN)
        for key in SYSCTLS:
            _write_sysctl(key, "1")

    def _save_sysctls(self) -> None:
        if self.state_file.exists():
            return
        saved = {key: _read_sysctl(key) for key in SYSCTLS}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(saved))

    def down(self) -> None:
        """Remove everything `up` and the node's agents made; safe to run on a half-made host."""
        _remove_iptables_chains()
        for link in _pod_veths():
            _run("ip", "link", "del", link, check=False)
        for link in (BRIDGE, SINK):
            if _link_exists(link):
                _run("ip", "link", "del", link)
        _remove_cni_netns()
        _remove_cgroups()
        if self.state_file.exists():
            for key, value in json.loads(self.state_file.read_text()).items():
                if value is not None:
                    _write_sysctl(key, value)
            self.state_file.unlink()


def conflict() -> str | None:
    """What of this machine's own network the sink would swallow: a route or a resolver inside the
    cluster's ranges (the sink's routes would cut it off), or None."""
    sunk = [ipaddress.ip_network(cidr) for cidr in (SERVICE_CIDR, CLUSTER_RANGE)]
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        if not words or words[0] in ("default", "local", "broadcast") or "dev" not in words:
            continue
        if words[words.index("dev") + 1] in (SINK, BRIDGE):
            continue
        with contextlib.suppress(ValueError):
            route = ipaddress.ip_network(words[0], strict=False)
            if any(route.overlaps(net) for net in sunk):
                ranges = ", ".join(map(str, sunk))
                return f"this machine routes {route}, inside the dev cluster's ranges {ranges}"
    resolv = Path("/etc/resolv.conf")
    for line in resolv.read_text().splitlines() if resolv.is_file() else []:
        words = line.split()
        if len(words) == 2 and words[0] == "nameserver":
            with contextlib.suppress(ValueError):
                server = ipaddress.ip_address(words[1])
                if any(server in net for net in sunk):
                    return f"this machine's resolver {server} is inside the dev cluster's ranges"
    return None


def _read_sysctl(key: str) -> str | None:
    path = Path("/proc/sys") / key
    return path.read_text().strip() if path.exists() else None


def _write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    if path.exists():
        path.write_text(value)


def _pod_veths() -> list[str]:
    """Host ends of pod interfaces still enslaved to the CNI bridge."""
    ports = Path(f"/sys/class/net/{BRIDGE}/brif")
    return sorted(p.name for p in ports.iterdir()) if ports.is_dir() else []


def _cni_netns() -> list[str]:
    """Network namespaces CNI made for pods (containerd names them `cni-<uuid>`)."""
    netns = Path("/var/run/netns")
    return sorted(e.name for e in netns.iterdir() if e.name.startswith("cni-")) if netns.is_dir() else []


def _remove_cni_netns() -> None:
    for name in _cni_netns():
        _run("ip", "netns", "del", name, check=False)


def _our_chains(listing: str) -> list[str]:
    return [
        line[1:].split()[0]
        for line in listing.splitlines()
        if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
    ]


def _remove_iptables_chains() -> None:
    """kube-proxy's, kubelet's, CNI's and ours, in the filter, nat and mangle tables: first the jumps
    to them from the built-in chains, then their rules, then the chains."""
    for table in ("filter", "nat", "mangle"):
        listing = _run("iptables-save", "-t", table, check=False).stdout
        chains = _our_chains(listing)
        jumps = [
            shlex.split(line)[1:]
            for line in listing.splitlines()
            if line.startswith("-A ") and line.split()[1] not in chains and any(c in line for c in chains)
        ]
        for rule in jumps:
            _run("iptables", "-w", "-t", table, "-D", *rule, check=False)
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-X", chain, check=False)


def _kubepods() -> list[Path]:
    """kubelet's `/kubepods` tree in every v1 hierarchy (and v2's)."""
    return [h / CGROUP_PARENT for h in CGROUP_ROOT.iterdir() if (h / CGROUP_PARENT).is_dir()]


def _remove_cgroups() -> None:
    """Deepest first: a cgroup is removed only once it has no children."""
    for top in _kubepods():
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def mount_points() -> list[str]:
    return [
        line.split()[4].replace("\\040", " ")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]


def unmount_under(*roots: Path) -> None:
    """Unmount whatever kubelet and containerd left mounted below `roots` (pod volumes, rootfs, shm),
    deepest first, so the directories can be removed."""
    prefixes = tuple(str(root.resolve()) + "/" for root in roots)
    for point in sorted((p for p in mount_points() if p.startswith(prefixes)), key=len, reverse=True):
        _run("umount", "--lazy", point, check=False)


def leftovers() -> list[str]:
    """Host-global state of a real node that is still here: empty after a clean `down`."""
    found = [f"link {link}" for link in (SINK, BRIDGE) if _link_exists(link)]
    found += [f"cgroup {top}" for top in _kubepods()]
    for table in ("filter", "nat", "mangle"):
        found += [f"iptables {table}/{c}" for c in _our_chains(_run("iptables-save", "-t", table).stdout)]
    found += [f"netns {name}" for name in _cni_netns()]
    return found


class NodeClaim:
    """Only one real node per machine: a marker names the cluster directory that owns it.

    The owning `kubeserve dev up` exits while the node runs, so a lock held by a process would not do;
    a marker whose owner no longer runs is stale, and the new owner sweeps before it starts.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def owner(self) -> str | None:
        return self.marker.read_text().strip() if self.marker.is_file() else None

    def take(self, directory: Path, owner_alive: bool) -> None:
        """Claim the node for `directory`; refused while another live cluster holds it."""
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        with (self.marker.parent / (self.marker.name + ".lock")).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.owner()
            if current and current != str(directory) and owner_alive:
                raise HostError(f"a real node already runs on this machine, for the cluster in {current}")
            self.marker.write_text(str(directory))

    def release(self, directory: Path) -> None:
        if self.owner() == str(directory):
            self.marker.unlink()
