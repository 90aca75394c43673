"""One real node beside the kwok nodes: containerd (Debian's), runc and CNI, kubelet and kube-proxy
built from the pinned Kubernetes module, and CoreDNS as a host process for cluster DNS.

The configuration of each agent is a pure function of the node's paths, so it can be read (and tested)
without starting anything. Debian's containerd 1.6 is used, not 2.x built from source: kubelet 1.36
still runs it (through the CRI fallback that 1.37 removes), and it installs in seconds with runc and the
CNI plugins; moving to a built 2.x is a version bump here once kubelet needs it.

containerd's image store lives in the cache, so images imported once stay for the next node; its
runtime state, kubelet's directory and the pods' logs live in one machine-wide place (`NODE_STATE`),
removed by `down`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from kubeserve.devcluster import build, dns, host_network, images, nodes, pause, pki
from kubeserve.devcluster.addresses import DNS_SERVICE_IP, NODE_IP, NODE_NAME, POD_CIDR
from kubeserve.devcluster.host_network import BRIDGE
from kubeserve.devcluster.ports import free_ports

NODE_LABEL = "kubeserve.dev/node"
"""`real` on the real node, `simulated` on kwok's: a pod picks one with a nodeSelector."""
SIMULATED_TAINT = {"key": "kubeserve.dev/simulated", "value": "true", "effect": "NoSchedule"}
"""On kwok's CPU nodes while a real node runs, so that pods land on the real node unless they opt out."""
CONTAINERD = "/usr/bin/containerd"
CTR = "ctr"
CRI_NAMESPACE = "k8s.io"
SNAPSHOTTER = "overlayfs"


def unsupported_reason() -> str | None:
    """Why this machine cannot run the real node with the project's images on it, or None when it can:
    the host (Linux, root, cgroups, containerd), kubelet built, and the tools that build the images."""
    reason = host_network.unsupported_reason()
    if reason is None and not build.binary_path("kubelet").is_file():
        reason = "kubelet is not built: run `kubeserve dev build`"
    if reason is None:
        try:
            images.check_prerequisites()
        except build.BuildError as error:
            reason = str(error)
    return reason


class NodeError(RuntimeError):
    """The real node did not come up; the message names the log to read."""


@dataclass(frozen=True)
class NodeFiles:
    """Where the node's agents keep their configuration and state.

    One place per machine, not per cluster (there is one real node at a time): a containerd started
    after a crash finds the crashed run's shims through this state and can end its containers.
    """

    root: Path

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def imported(self) -> Path:
        """What was imported into the image store, by archive: an unchanged archive is not re-read."""
        return containerd_root() / "imported.json"


def containerd_root() -> Path:
    return build.cache_root() / "real-node" / "containerd"


NODE_STATE = Path("/var/lib/kubeserve/node")
"""Machine-wide, not under the (per-user, overridable) cache: the host state it goes with is too."""
CLAIM_MARKER = Path("/run/kubeserve/real-node.owner")
"""Which cluster holds the machine's node; under /run, as a reboot ends any claim."""


def node_files() -> NodeFiles:
    return NodeFiles(NODE_STATE)


def containerd_config(files: NodeFiles) -> str:
    """containerd's TOML (config version 2, as 1.6 reads it).

    `restrict_oom_score_adj`: this VM's root lacks CAP_SYS_RESOURCE, so the sandbox may not lower its
    OOM score; cgroupfs, not systemd, as kubelet uses it on cgroup v1.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{containerd_root()}"
state = "{files.containerd_state}"

[grpc]
  address = "{files.socket}"

[{cri}]
  sandbox_image = "{pause.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "{SNAPSHOTTER}"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{host_network.cni_bin_dir()}"
  conf_dir = "{files.cni_conf_dir}"
"""


def cni_config(files: NodeFiles) -> dict[str, Any]:
    """A bridge with host-local addresses: pods reach each other, the node and (through kube-proxy)
    Services; hairpin so that a pod reaches itself through its own Service."""
    return {
        "cniVersion": "1.0.0",
        "name": "kubeserve",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(files.root / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    files: NodeFiles, ca: Path, serving: pki.KeyPair, port: int, healthz: int
) -> dict[str, Any]:
    """kubelet on cgroup v1 with cgroupfs, serving on the node IP with client-certificate and webhook
    authentication, so that `kubectl logs` and `exec` work through the API server as on any cluster."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{files.socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(files.root / "resolv.conf"),
        "podLogsDir": str(files.pod_logs),
        "serializeImagePulls": False,
        # Images come from the local store only; pressure evictions would only hide a test's real failure.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "localStorageCapacityIsolation": True,
        "maxPods": 110,
    }


def kube_proxy_config(kubeconfig: Path, healthz: int, metrics: int) -> dict[str, Any]:
    """iptables mode; conntrack sysctls left as they are (`maxPerCore: 0`), as this VM may refuse them."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
    }


def _ctr(files: NodeFiles, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CTR, "--address", str(files.socket), "--namespace", CRI_NAMESPACE, *args],
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise NodeError(f"`ctr {' '.join(args[:2])}` failed: {result.stderr.strip()}")
    return result


def import_images(files: NodeFiles, archives: list[Path]) -> list[Path]:
    """Import OCI archives into the node's image store; an archive imported before, unchanged, is
    skipped. Returns the archives actually imported."""
    done: dict[str, list[float]] = json.loads(files.imported.read_text()) if files.imported.is_file() else {}
    present = set(_ctr(files, "images", "ls", "--quiet").stdout.split())
    imported = []
    for archive in archives:
        stamp = [archive.stat().st_mtime, float(archive.stat().st_size)]
        if done.get(str(archive)) == stamp and _archive_refs(archive) <= present:
            continue
        _ctr(files, "images", "import", "--all-platforms", "--snapshotter", SNAPSHOTTER, str(archive))
        done[str(archive)] = stamp
        imported.append(archive)
    files.imported.write_text(json.dumps(done))
    return imported


def _archive_refs(archive: Path) -> set[str]:
    """The image names an OCI archive's index carries."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        index = json.loads(member.read()) if member else {}
    names = set()
    for manifest in index.get("manifests", []):
        annotations = manifest.get("annotations", {})
        name = annotations.get("io.containerd.image.name") or annotations.get(
            "org.opencontainers.image.ref.name"
        )
        if name:
            names.add(name)
    return names


def remove_containers(files: NodeFiles) -> None:
    """Kill and delete every container in the CRI namespace, pods' sandboxes included: kubelet leaves
    them running when it stops, and so does a crashed run."""
    for container in _ctr(files, "containers", "ls", "--quiet", check=False).stdout.split():
        _ctr(files, "tasks", "kill", "--signal", "SIGKILL", container, check=False)
        deadline = time.monotonic() + 10
        while True:
            deleted = _ctr(files, "tasks", "delete", "--force", container, check=False)
            # A container that never started has no task: nothing to wait for.
            if deleted.returncode == 0 or "not found" in deleted.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        _ctr(files, "containers", "delete", container, check=False)


def containerd_answers(files: NodeFiles) -> bool:
    return _ctr(files, "version", check=False).returncode == 0


def wait_for(check: Callable[[], bool], deadline: float, what: str, log: Path) -> None:
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise NodeError(f"{what} did not happen in time; see {log}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def write_configs(files: NodeFiles, kubelet: dict[str, Any], kube_proxy: dict[str, Any]) -> None:
    for directory in (
        files.root,
        files.containerd_state,
        files.cni_conf_dir,
        files.kubelet_root,
        files.pod_logs,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    containerd_root().mkdir(parents=True, exist_ok=True)
    (files.root / "containerd.toml").write_text(containerd_config(files))
    (files.cni_conf_dir / "10-kubeserve.conflist").write_text(json.dumps(cni_config(files), indent=2))
    (files.root / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))
    (files.root / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy))
    # Pods with dnsPolicy Default get the node's resolver: cluster DNS itself, which answers only
    # cluster names (nothing may leave the machine).
    (files.root / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")


@dataclass(frozen=True)
class NodeIdentity:
    """The credentials the node's agents run with: each its own, from the cluster CA."""

    ca: Path
    kubelet_kubeconfig: Path
    kubelet_serving: pki.KeyPair
    kube_proxy_kubeconfig: Path
    coredns_kubeconfig: Path


Launch = Callable[[str, str, list[str]], None]
"""Starts a process under a name, recorded by PID in the cluster's state: (name, binary, args)."""


class RealNode:
    """Starts the node's agents in order, each waited for, and removes all they made on the way out."""

    def __init__(self, directory: Path, logs: Path) -> None:
        self.directory = directory
        self.files = node_files()
        self.logs = logs
        self.network = host_network.HostNetwork(self.files.root.parent / "host-sysctls.json")
        self.claim = host_network.NodeClaim(CLAIM_MARKER)

    def prepare_host(self, owner_alive: bool) -> None:
        """Before any cluster process: claim the machine's one node, sweep a crashed run, route."""
        reason = host_network.unsupported_reason()
        if reason:
            raise host_network.HostError(reason)
        self.claim.take(self.directory, owner_alive)
        self.sweep()
        self.network.up()

    def sweep(self) -> None:
        """Whatever a run that never reached `down` left: its containers, through a containerd started
        on the same state (which finds their shims), then everything on the host."""
        config = self.files.root / "containerd.toml"
        if config.is_file():
            with (self.logs / "containerd-sweep.log").open("ab") as log:
                sweeper = subprocess.Popen(
                    [CONTAINERD, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
                )
            try:
                wait_for(
                    lambda: containerd_answers(self.files),
                    time.monotonic() + 30,
                    "containerd (sweeping a previous run) answering",
                    self.logs / "containerd-sweep.log",
                )
                remove_containers(self.files)
            finally:
                sweeper.terminate()
                sweeper.wait(timeout=30)
        self._clean_host()

    def _clean_host(self) -> None:
        subprocess.run([str(build.binary_path("kube-proxy")), "--cleanup"], capture_output=True, check=False)
        remove_state(self.files)
        self.network.down()

    def start(self, launch: Launch, identity: NodeIdentity, http: httpx.Client, deadline: float) -> None:
        kubelet_port, kubelet_healthz, proxy_healthz, proxy_metrics, dns_health, dns_ready = free_ports(6)
        write_configs(
            self.files,
            kubelet_config(self.files, identity.ca, identity.kubelet_serving, kubelet_port, kubelet_healthz),
            kube_proxy_config(identity.kube_proxy_kubeconfig, proxy_healthz, proxy_metrics),
        )
        launch("containerd", CONTAINERD, ["--config", str(self.files.root / "containerd.toml")])
        wait_for(
            lambda: containerd_answers(self.files),
            deadline,
            "containerd answering",
            self.logs / "containerd.log",
        )
        remove_containers(self.files)
        import_images(self.files, [pause.ensure_pause_archive()])
        launch(
            "kubelet",
            str(build.binary_path("kubelet")),
            [
                f"--config={self.files.root / 'kubelet.yaml'}",
                f"--kubeconfig={identity.kubelet_kubeconfig}",
                f"--root-dir={self.files.kubelet_root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--node-labels={NODE_LABEL}=real,type=real",
            ],
        )
        wait_for(lambda: _node_ready(http), deadline, f"node {NODE_NAME} Ready", self.logs / "kubelet.log")
        launch(
            "kube-proxy",
            str(build.binary_path("kube-proxy")),
            [f"--config={self.files.root / 'kube-proxy.yaml'}"],
        )
        wait_for(
            lambda: http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"),
            deadline,
            "kube-proxy's first sync",
            self.logs / "kube-proxy.log",
        )
        for manifest in dns.rbac_manifests() + dns.service_manifests(DNS_SERVICE_IP, NODE_IP):
            _create(http, manifest)
        corefile = self.files.root / "Corefile"
        corefile.write_text(dns.corefile(identity.coredns_kubeconfig, NODE_IP, dns_health, dns_ready))
        launch("coredns", str(build.binary_path("coredns")), ["-conf", str(corefile)])
        wait_for(
            lambda: http_ok(f"http://127.0.0.1:{dns_ready}/ready"),
            deadline,
            "CoreDNS ready",
            self.logs / "coredns.log",
        )

    def import_images(self, archives: list[Path]) -> list[Path]:
        return import_images(self.files, archives)

    def stop(self, stop_process: Callable[[str], None]) -> None:
        """Agents first (their pods stay), then the pods through containerd, then the host state.
        A cluster that never held the node (another one did) leaves the host alone."""
        for name in ("coredns", "kube-proxy", "kubelet"):
            stop_process(name)
        owned = self.claim.owner() == str(self.directory)
        if owned and self.files.socket.exists():
            remove_containers(self.files)
        stop_process("containerd")
        if owned:
            self._clean_host()
            self.claim.release(self.directory)


def _node_ready(http: httpx.Client) -> bool:
    response = http.get(f"/api/v1/nodes/{NODE_NAME}")
    return response.status_code == 200 and nodes.ready(response.json())


def _create(http: httpx.Client, manifest: dict[str, Any]) -> None:
    """POST to the object's collection; an object that exists already (a second `up`) is fine."""
    api = manifest["apiVersion"]
    prefix = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    namespace = manifest["metadata"].get("namespace")
    plural = PLURALS[manifest["kind"]]
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    response = http.post(path, json=manifest)
    if response.is_error and response.status_code != 409:
        raise NodeError(
            f"could not create {manifest['kind']} {manifest['metadata']['name']}: {response.text}"
        )


PLURALS = {
    "Service": "services",
    "EndpointSlice": "endpointslices",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
}


def leftovers() -> list[str]:
    """Everything of a real node still on the machine: host state, mounts, containerd shims. Empty
    after a clean `down`."""
    found = host_network.leftovers()
    prefixes = (str(node_files().root) + "/", str(containerd_root()) + "/")
    found += [f"mount {point}" for point in host_network.mount_points() if point.startswith(prefixes)]
    socket = str(node_files().socket).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if socket in cmdline:
                command = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"process {proc.name}: {command}")
    return found


SHARED_RUN_DIRS = (
    Path("/run/containerd/runc/k8s.io"),
    Path("/run/containerd/s"),
    Path("/run/containerd/fifo"),
)
"""Where containerd 1.6 keeps shim sockets, FIFOs and runc's state whatever its configured state
directory: emptied by removing the containers, then removed if nothing else put anything there."""


def remove_state(files: NodeFiles) -> None:
    host_network.unmount_under(files.root, containerd_root())
    shutil.rmtree(files.root, ignore_errors=True)
    for directory in SHARED_RUN_DIRS:
        with contextlib.suppress(OSError):
            directory.rmdir()
