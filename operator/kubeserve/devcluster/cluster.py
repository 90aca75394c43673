"""Starts, inspects and stops the local control plane, every process recorded by PID.

The cluster lives in one directory: certificates, kubeconfigs, etcd data, logs
and `state.json`, which lists the processes this tool started so that `down`
stops exactly those and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import yaml

from kubeserve.devcluster import addresses, build, dns, model_store, nodes, pki, ports, real_node, versions

STATE_FILE = "state.json"
# Every write, at metadata level: tests and benchmarks count the operator's writes from it. Also every
# request of a ServiceAccount outside kube-system (the chart's operator account, when a test runs the
# operator with its token), so a test sees every request the account was refused (403); kube-system's
# are the controllers' own (--use-service-account-credentials), whose reads would flood the log.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}
CONTROLLER_RATE_LIMITS = ("--kube-api-qps=200", "--kube-api-burst=400")
ADMIN_USER = "kubernetes-admin"
FRONT_PROXY_USER = "front-proxy-client"
AUDIT_ADMIN_READS = {"level": "Metadata", "users": [ADMIN_USER], "verbs": ["get", "list", "watch"]}
"""Reads by the admin identity (which a local operator runs as): a benchmark counts them on request."""


class ClusterError(RuntimeError):
    """The control plane did not come up; the message points at the log to read."""


@dataclass
class ClusterState:
    directory: str
    kubeconfig: str
    server: str
    processes: dict[str, int]
    versions: str
    audit_log: str = ""
    binaries: dict[str, str] = field(default_factory=dict)
    """The binary of each process not built into the cache (containerd): how `running` recognises it."""
    real_node: bool = False


def _kubeconfig(server: str, ca: Path, user: pki.KeyPair) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubeserve-dev", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": "user", "user": {"client-certificate": str(user.cert), "client-key": str(user.key)}}
        ],
        "contexts": [{"name": "kubeserve-dev", "context": {"cluster": "kubeserve-dev", "user": "user"}}],
        "current-context": "kubeserve-dev",
    }


def _binary(state: ClusterState, name: str) -> str:
    return state.binaries.get(name) or str(build.binary_path(name))


def _is_ours(pid: int, binary: str) -> bool:
    """True when `pid` still runs `binary`: a recycled PID must never be signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return cmdline == binary


def _stop(pid: int, binary: str, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace`; an exited child shows an empty cmdline until reaped."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _is_ours(pid, binary):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


class LocalControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or build.cluster_dir()
        self.logs = self.directory / "logs"
        # Handles of the processes this instance started, so they are reaped, not leaked.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    def state(self) -> ClusterState | None:
        path = self.directory / STATE_FILE
        if not path.is_file():
            return None
        return ClusterState(**json.loads(path.read_text()))

    def running(self) -> dict[str, bool]:
        state = self.state()
        if state is None:
            return {}
        return {name: _is_ours(pid, _binary(state, name)) for name, pid in state.processes.items()}

    def _save(self, state: ClusterState) -> None:
        (self.directory / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))

    def _start(self, state: ClusterState, name: str, args: list[str], binary: str | None = None) -> None:
        if binary is not None:
            state.binaries[name] = binary
        binary = _binary(state, name)
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [binary, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._children[process.pid] = process
        state.processes[name] = process.pid
        self._save(state)

    def up(self, timeout: float = 90.0, audit_reads: bool = False, real: bool = False) -> ClusterState:
        """Start a fresh cluster and return once nodes are Ready and the API is usable.

        With `audit_reads`, the audit log also records the admin identity's reads,
        so that a benchmark can count every request of an operator running as admin.
        With `real`, one real node joins the kwok nodes (`real_node`), and ordinary pods land on it;
        the example models are served to it from this machine (`model_store`).
        """
        if any(self.running().values()):
            raise ClusterError(
                f"a cluster already runs from {self.directory}; run `kubeserve dev down` first"
            )
        build.ensure_built()
        try:
            return self._start_all(time.monotonic() + timeout, audit_reads, real)
        except BaseException:
            self.down()
            raise

    def _start_all(self, deadline: float, audit_reads: bool, real: bool) -> ClusterState:
        self._reset_directory()
        # With a real node, pods reach the API server through the `kubernetes` Service: it binds the
        # node's address, which they can reach, instead of loopback, which they cannot.
        host = addresses.NODE_IP if real else "127.0.0.1"
        etcd_client, etcd_peer, api_port = ports.free_ports(3)
        server = f"https://{host}:{api_port}"
        audit_log = self.logs / "audit.log"
        state = ClusterState(
            str(self.directory),
            str(self.kubeconfig),
            server,
            {},
            versions.as_text(),
            str(audit_log),
            real_node=real,
        )
        self._save(state)
        node = real_node.RealNode(self.directory, self.logs) if real else None
        if node is not None:
            owner = node.claim.owner()
            node.prepare_host(
                owner_alive=owner is not None and any(LocalControlPlane(Path(owner)).running().values())
            )
        certs = pki.ClusterPKI(self.directory / "pki")
        serving = certs.serving("apiserver", host)
        sa_keys = certs.service_account_keys()
        identities = {
            "admin": certs.client("admin", ADMIN_USER, "system:masters"),
            "controller-manager": certs.client("controller-manager", "system:kube-controller-manager"),
            "scheduler": certs.client("scheduler", "system:kube-scheduler"),
        }
        if real:
            identities |= {
                "kubelet": certs.client("kubelet", f"system:node:{addresses.NODE_NAME}", "system:nodes"),
                "kube-proxy": certs.client("kube-proxy", "system:kube-proxy"),
                "coredns": certs.client("coredns", dns.USER),
            }
        kubelet_client = certs.client(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
        )
        front_proxy = certs.client(FRONT_PROXY_USER, FRONT_PROXY_USER)
        kubeconfigs = {}
        for who, pair in identities.items():
            path = self.directory / f"{who}.kubeconfig"
            path.write_text(yaml.safe_dump(_kubeconfig(server, certs.ca.cert, pair)))
            kubeconfigs[who] = str(path)
        audit_policy = self.directory / "audit-policy.yaml"
        rules = [AUDIT_ADMIN_READS, *AUDIT_POLICY["rules"]] if audit_reads else AUDIT_POLICY["rules"]
        audit_policy.write_text(yaml.safe_dump({**AUDIT_POLICY, "rules": rules}))

        etcd_url = f"http://127.0.0.1:{etcd_client}"
        peer_url = f"http://127.0.0.1:{etcd_peer}"
        self._start(
            state,
            "etcd",
            [
                "--name=dev",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=dev={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._start(
            state,
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--bind-address={host}",
                f"--advertise-address={host}",
                f"--secure-port={api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={certs.ca.cert}",
                f"--service-account-key-file={sa_keys.cert}",
                f"--service-account-signing-key-file={sa_keys.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={addresses.SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                f"--cert-dir={self.directory / 'pki'}",
                "--profiling=false",
                # `kubectl logs` and `exec` on the real node: the API server dials its InternalIP, checks
                # kubelet's certificate, and shows its own.
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={certs.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                # The aggregation layer (KEDA's metrics adapter serves external.metrics.k8s.io): the API
                # server proxies as `front_proxy`, and servers behind an APIService trust the user it names.
                f"--proxy-client-cert-file={front_proxy.cert}",
                f"--proxy-client-key-file={front_proxy.key}",
                f"--requestheader-client-ca-file={certs.ca.cert}",
                f"--requestheader-allowed-names={FRONT_PROXY_USER}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                # Lists and watches straight from etcd: with the watch cache, a CRD deleted soon after it
                # was created waits minutes for its cache ("storage is (re)initializing") before its
                # instances can be cleaned up, which stalls tests that install and remove CRDs.
                "--watch-cache=false",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={audit_log}",
                "--audit-log-maxsize=200",
            ],
        )
        with self._admin_http(state) as http:
            self._wait_answers(
                lambda: http.get("/readyz"),
                ("etcd", "kube-apiserver"),
                deadline,
                f"kube-apiserver was not ready in time; see {self.logs / 'kube-apiserver.log'}",
            )
        self._start(
            state,
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfigs['controller-manager']}",
                f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
                f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
                f"--service-account-private-key-file={sa_keys.key}",
                f"--root-ca-file={certs.ca.cert}",
                "--use-service-account-credentials",
                # Client rate limits fit for a thousand Deployments at once (the defaults, 20 requests
                # per second per controller, would make the ReplicaSet controller the bottleneck).
                *CONTROLLER_RATE_LIMITS,
                "--leader-elect=false",
                "--secure-port=0",
                "--profiling=false",
                f"--service-cluster-ip-range={addresses.SERVICE_CIDR}",
            ],
        )
        self._start(
            state,
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfigs['scheduler']}",
                *CONTROLLER_RATE_LIMITS,
                "--leader-elect=false",
                "--secure-port=0",
                "--profiling=false",
            ],
        )
        self._start(
            state,
            "kwok",
            [
                f"--kubeconfig={kubeconfigs['admin']}",
                f"--config={build.kwok_stages_file()}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}=fake",
                f"--cidr={addresses.KWOK_POD_CIDR}",
                f"--node-ip={addresses.KWOK_NODE_IP}",
                "--node-lease-duration-seconds=40",
            ],
        )
        with self._admin_http(state) as http:
            self._register_nodes_and_wait(http, deadline, simulated_taint=real)
            if node is not None:
                node.start(
                    lambda name, binary, args: self._start(state, name, args, binary),
                    real_node.NodeIdentity(
                        ca=certs.ca.cert,
                        kubelet_kubeconfig=Path(kubeconfigs["kubelet"]),
                        kubelet_serving=certs.node_serving(addresses.NODE_NAME, addresses.NODE_IP),
                        kube_proxy_kubeconfig=Path(kubeconfigs["kube-proxy"]),
                        coredns_kubeconfig=Path(kubeconfigs["coredns"]),
                    ),
                    http,
                    deadline,
                )
        if real:
            store = self.directory / "models"
            model_store.fill(store)
            binary, arguments = model_store.server_command(store)
            self._start(state, "model-store", arguments, binary)
            self._wait_answers(
                lambda: httpx.get(model_store.URL, timeout=1.0),
                ("model-store",),
                deadline,
                f"the model store did not answer at {model_store.URL}; see {self.logs / 'model-store.log'}",
            )
        return state

    def _reset_directory(self) -> None:
        for stale in ("etcd", "logs", "pki"):
            path = self.directory / stale
            shutil.rmtree(path, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def _admin_http(self, state: ClusterState) -> httpx.Client:
        certs = self.directory / "pki"
        tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        tls.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
        return httpx.Client(base_url=state.server, verify=tls, timeout=5.0)

    def _wait_answers(
        self, get: Callable[[], httpx.Response], names: tuple[str, ...], deadline: float, failure: str
    ) -> None:
        """Poll `get` until it answers 200, failing early when one of `names` exited."""
        while time.monotonic() < deadline:
            self._fail_if_exited(*names)
            try:
                if get().status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise ClusterError(failure)

    def _fail_if_exited(self, *names: str) -> None:
        for name, alive in self.running().items():
            if name in names and not alive:
                raise ClusterError(f"{name} exited during start-up; see {self.logs / (name + '.log')}")

    def _register_nodes_and_wait(self, http: httpx.Client, deadline: float, simulated_taint: bool) -> None:
        for shape in nodes.DEFAULT_NODES:
            manifest = nodes.node_manifest(shape)
            if simulated_taint and not shape.taints:
                manifest["spec"]["taints"].append(real_node.SIMULATED_TAINT)
            response = http.post("/api/v1/nodes", json=manifest)
            if response.is_error:
                raise ClusterError(f"could not register node {shape.name}: {response.text}")
        while time.monotonic() < deadline:
            self._fail_if_exited(*self.running())
            listed = http.get("/api/v1/nodes").json()["items"]
            ready = [n for n in listed if nodes.ready(n)]
            accounts = http.get("/api/v1/namespaces/default/serviceaccounts").json()["items"]
            if len(ready) == len(nodes.DEFAULT_NODES) and accounts:
                return
            time.sleep(0.2)
        raise ClusterError(f"nodes were not Ready in time; see {self.logs / 'kwok.log'}")

    def kill_and_restart(self, name: str) -> None:
        """SIGKILL one recorded process and start it again with the same command line, as a crash and a
        supervisor's restart would (for chaos runs); the caller waits for it to be ready."""
        state = self.state()
        if state is None or not self.running().get(name):
            raise ClusterError(f"{name} is not running")
        pid = state.processes[name]
        command = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
        os.kill(pid, signal.SIGKILL)
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()
        self._start(state, name, command[1:])

    def down(self) -> list[str]:
        """Stop the recorded processes, newest first; returns the names that were running."""
        state = self.state()
        if state is None:
            return []
        stopped: list[str] = []

        def stop(name: str) -> None:
            pid, binary = state.processes.get(name), _binary(state, name)
            if pid is not None and _is_ours(pid, binary):
                _stop(pid, binary)
                child = self._children.pop(pid, None)
                if child is not None:
                    child.wait()
                stopped.append(name)

        if state.real_node:
            real_node.RealNode(self.directory, self.logs).stop(stop)
        for name in reversed(state.processes):
            stop(name)
        # Children that died on their own (or were killed) are reaped too, not left as zombies.
        for child in self._children.values():
            child.wait(timeout=10)
        self._children.clear()
        (self.directory / STATE_FILE).unlink()
        return stopped
