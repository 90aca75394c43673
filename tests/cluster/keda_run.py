"""KEDA's operator as a host process against the session's API server, the way KEDA's own Makefile runs
it outside a cluster (`make run`: KEDA_CLUSTER_OBJECT_NAMESPACE and an empty WATCH_NAMESPACE).

Out of a pod it has no service-account files and no Service in front of it, so: the kubeconfig names the
API server; cert rotation is off (it would write a Secret and patch an APIService and webhooks that do
not exist here), and its metrics gRPC server, which always serves mutual TLS, gets a certificate for
loopback from a CA of its own; leader election is off; every port it listens on is a free loopback one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from kubeserve.devcluster import build, pki, ports

OBJECT_NAMESPACE = "keda"
"""Where KEDA would look for cluster-wide trigger secrets; nothing here uses them, so it need not exist."""


class KedaError(RuntimeError):
    """KEDA's operator did not come up; the message carries the end of its log."""


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class KedaOperator:
    """One keda-operator process, started and stopped by its own PID, logging to `directory/keda.log`."""

    def __init__(self, kubeconfig: str, directory: Path) -> None:
        self.kubeconfig = kubeconfig
        self.directory = directory
        self.log = directory / "keda.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _certificates(self) -> Path:
        """ca.crt, tls.crt and tls.key, the names KEDA reads from its --cert-dir."""
        authority = pki.ClusterPKI(self.directory / "pki")
        serving = authority.serving("metrics-service")
        cert_dir = self.directory / "certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        for source, name in (
            (authority.ca.cert, "ca.crt"),
            (serving.cert, "tls.crt"),
            (serving.key, "tls.key"),
        ):
            shutil.copyfile(source, cert_dir / name)
        return cert_dir

    def start(self, timeout: float = 60.0) -> None:
        """Start it and return once its readiness probe answers; it then reconciles ScaledObjects."""
        binary = build.binary_path("keda-operator")
        if not binary.is_file():
            raise KedaError(f"{binary} is not built; run `kubeserve dev build`")
        metrics, probe, grpc = ports.free_ports(3)
        env = os.environ | {
            "KUBECONFIG": self.kubeconfig,
            "WATCH_NAMESPACE": "",
            "KEDA_CLUSTER_OBJECT_NAMESPACE": OBJECT_NAMESPACE,
            "POD_NAMESPACE": OBJECT_NAMESPACE,
        }
        args = [
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{probe}",
            f"--metrics-service-bind-address=127.0.0.1:{grpc}",
            "--leader-elect=false",
            "--enable-cert-rotation=false",
            f"--cert-dir={self._certificates()}",
            "--zap-log-level=info",
        ]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise KedaError(f"keda-operator exited with {self._process.returncode}:\n{_tail(self.log)}")
            try:
                if httpx.get(f"http://127.0.0.1:{probe}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise KedaError(f"keda-operator was not ready in {timeout:.0f} s:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
