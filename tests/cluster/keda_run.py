"""KEDA's operator and metrics adapter as host processes against the session's API server, the way KEDA's
own Makefile runs the operator outside a cluster (`make run`: KEDA_CLUSTER_OBJECT_NAMESPACE and an empty
WATCH_NAMESPACE).

Out of a pod they have no service-account files and no Service in front of them, so: the kubeconfig names
the API server; cert rotation is off (it would write a Secret and patch an APIService and webhooks that
do not exist here), and the operator's metrics gRPC server, which always serves mutual TLS, and the
adapter, its client, get certificates for loopback from a CA of their own; leader election is off; every
port they listen on is a free one. The adapter serves external.metrics.k8s.io to the API server's
aggregation layer (an APIService, which the tests write).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from kubeserve.devcluster import build, pki, ports
from tests.operator_run import stop_process

OBJECT_NAMESPACE = "keda"
"""Where KEDA would look for cluster-wide trigger secrets; nothing here uses them, so it need not exist."""


class KedaError(RuntimeError):
    """A KEDA process did not come up; the message carries the end of its log."""


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _cert_dir(directory: Path, ca: Path, pair: pki.KeyPair) -> Path:
    """ca.crt, tls.crt and tls.key: the names KEDA reads from a --cert-dir."""
    directory.mkdir(parents=True, exist_ok=True)
    for source, name in ((ca, "ca.crt"), (pair.cert, "tls.crt"), (pair.key, "tls.key")):
        shutil.copyfile(source, directory / name)
    return directory


class Keda:
    """keda-operator and keda-adapter, each started and stopped by its own PID, logging under `directory`."""

    def __init__(self, kubeconfig: str, directory: Path) -> None:
        self.kubeconfig = kubeconfig
        self.directory = directory
        self.authority = pki.ClusterPKI(directory / "pki")
        self.serving = self.authority.serving("keda-serving")
        """For loopback: the operator's gRPC server and the adapter's HTTPS server."""
        self.adapter_port = 0
        self._processes: list[subprocess.Popen[bytes]] = []
        self._grpc_port = 0

    def _env(self) -> dict[str, str]:
        return os.environ | {
            "KUBECONFIG": self.kubeconfig,
            "WATCH_NAMESPACE": "",
            "KEDA_CLUSTER_OBJECT_NAMESPACE": OBJECT_NAMESPACE,
            "POD_NAMESPACE": OBJECT_NAMESPACE,
        }

    def _start(self, name: str, args: list[str], ready: Callable[[], bool], timeout: float) -> None:
        """Start `name` and return once `ready` holds; fail early, with its log, if it exits."""
        binary = build.binary_path(name)
        if not binary.is_file():
            raise KedaError(f"{binary} is not built; run `kubeserve dev build`")
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(binary), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
            )
        self._processes.append(process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KedaError(f"{name} exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise KedaError(f"{name} was not ready in {timeout:.0f} s:\n{_tail(log_path)}")

    def start_operator(self, timeout: float = 60.0) -> None:
        """The operator: once ready, it reconciles ScaledObjects into HPAs and serves metrics over gRPC."""
        metrics, probe, self._grpc_port = ports.free_ports(3)
        cert_dir = _cert_dir(self.directory / "operator-certs", self.authority.ca.cert, self.serving)
        args = [
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{probe}",
            f"--metrics-service-bind-address=127.0.0.1:{self._grpc_port}",
            "--leader-elect=false",
            "--enable-cert-rotation=false",
            f"--cert-dir={cert_dir}",
            "--zap-log-level=info",
        ]
        url = f"http://127.0.0.1:{probe}/readyz"
        self._start("keda-operator", args, lambda: httpx.get(url, timeout=1.0).status_code == 200, timeout)

    def start_adapter(self, timeout: float = 60.0) -> None:
        """The metrics adapter, the operator's gRPC client, serving HTTPS on loopback for the aggregator.
        Its --cert-dir holds its gRPC client certificate; it serves with the loopback serving one."""
        self.adapter_port, metrics = ports.free_ports(2)
        client = self.authority.client("metrics-adapter", "keda-metrics-adapter")
        args = [
            f"--secure-port={self.adapter_port}",
            "--bind-address=127.0.0.1",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--cert-dir={_cert_dir(self.directory / 'adapter-certs', self.authority.ca.cert, client)}",
            f"--lister-kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--metrics-service-address=127.0.0.1:{self._grpc_port}",
            # Its Prometheus metrics: KEDA binds them on every address, on this port.
            f"--port={metrics}",
        ]
        tls = ssl.create_default_context(cafile=str(self.authority.ca.cert))
        url = f"https://127.0.0.1:{self.adapter_port}/readyz"
        self._start(
            "keda-adapter", args, lambda: httpx.get(url, verify=tls, timeout=1.0).status_code == 200, timeout
        )

    def stop(self) -> None:
        """Newest first: the adapter, then the operator."""
        while self._processes:
            stop_process(self._processes.pop())
