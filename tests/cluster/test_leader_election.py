"""Two operator replicas on one Lease: one acts at a time, a dead or displaced leader is replaced.

The session's operator is stopped meanwhile, so the two replicas here are the
only ones reconciling. Who wrote what comes from the API server's audit log,
by the User-Agent's PID; the audit log is in request order, so "every write of
the old leader comes before every write of the new one" is read off directly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from kubeserve.apply.client import USER_AGENT_PRODUCT
from kubeserve.devcluster.audit import AuditTail, Request
from kubeserve.devcluster.ports import free_port
from tests.cluster.isvc import Isvcs, example
from tests.cluster.quiet import QUIET_WINDOW
from tests.operator_run import running_operator
from tests.polling import eventually

LEASE = "kubeserve-operator"
LEASE_SECONDS = 4.0
"""Short, so a takeover is quick: the holder stops writing after 2/3 of it without a renewal."""
SERVICES = 24

pytestmark = pytest.mark.usefixtures("session_operator_stopped")


class Replica:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def identity(self) -> str:
        return f"{socket.gethostname()}-{self.process.pid}"

    def wrote(self, request: Request) -> bool:
        return request.user_agent.endswith(f"/{self.process.pid})")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def metric(self, line_start: str) -> float | None:
        """The value of the first exposition line starting with `line_start`, if the replica answers."""
        try:
            text = self.get("/metrics").text
        except httpx.TransportError:
            return None
        return next(
            (float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)), None
        )


@contextmanager
def replica(kubeconfig: str, namespace: str, log: Path) -> Iterator[Replica]:
    port = free_port()
    args = ("--namespace", namespace, "--leader-elect", "--operator-namespace", namespace)
    args += ("--lease-duration", str(LEASE_SECONDS), "--http-address", f"127.0.0.1:{port}")
    with running_operator(kubeconfig, log, *args) as process:
        yield Replica(process, port, log)


def holder(kube: k8s.ApiClient, namespace: str) -> str | None:
    try:
        lease = k8s.CoordinationV1Api(kube).read_namespaced_lease(LEASE, namespace)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def _service(index: int) -> dict[str, Any]:
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = f"iris-{index}"
    return body


def _ready(isvcs: Isvcs, name: str) -> bool:
    found = isvcs.condition(name, "Ready")
    return bool(found and found["status"] == "True")


def _object_writes(tail: AuditTail, namespace: str) -> list[Request]:
    """The replicas' writes to the services' objects (their own Lease renewals aside)."""
    return [r for r in tail.writes(USER_AGENT_PRODUCT) if r.namespace == namespace and r.resource != "leases"]


@pytest.fixture
def replicas(kubeconfig: str, namespace: str, kube: k8s.ApiClient, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two replicas, the first of them leading (it was started first and took the free Lease)."""
    with ExitStack() as stack:
        first = stack.enter_context(replica(kubeconfig, namespace, tmp_path / "first.log"))
        eventually(lambda: holder(kube, namespace) == first.identity, 30, "the first replica to lead")
        second = stack.enter_context(replica(kubeconfig, namespace, tmp_path / "second.log"))
        eventually(second.ready, 30, "the second replica ready (warm, on standby)")
        yield [first, second]


def test_only_the_leader_acts_and_a_killed_leader_is_replaced(
    kube: k8s.ApiClient, namespace: str, audit_log: Path, replicas: list[Replica]
) -> None:
    leader, standby = replicas
    assert leader.metric("kubeserve_leader ") == 1.0
    assert standby.metric("kubeserve_leader ") == 0.0
    isvcs = Isvcs(kube, namespace)
    tail = AuditTail(audit_log)
    for index in range(SERVICES):
        isvcs.apply(_service(index))
    eventually(lambda: any(_ready(isvcs, f"iris-{i}") for i in range(SERVICES)), 60, "a first service Ready")
    leader.process.send_signal(signal.SIGKILL)  # mid-run: most services are not Ready yet
    leader.process.wait()
    ready_at_kill = sum(_ready(isvcs, f"iris-{i}") for i in range(SERVICES))

    eventually(lambda: holder(kube, namespace) == standby.identity, 30, "the standby to take the lease")
    for index in range(SERVICES):
        isvcs.wait_ready(f"iris-{index}", timeout=60)

    writes = _object_writes(tail, namespace)
    by_leader = [i for i, r in enumerate(writes) if leader.wrote(r)]
    by_standby = [i for i, r in enumerate(writes) if standby.wrote(r)]
    assert by_leader, "the first leader wrote nothing before it was killed"
    assert by_standby, f"the new leader had nothing left to do ({ready_at_kill} Ready at the kill)"
    assert max(by_leader) < min(by_standby), "the two replicas' writes interleave"
    assert standby.metric("kubeserve_leader ") == 1.0
    assert (standby.metric('kubeserve_reconciles_total{kind="InferenceService",result="ok"}') or 0) >= 1
    assert standby.metric('kubeserve_inference_services{condition="Ready",status="True"}') == SERVICES


def test_a_leader_that_loses_its_lease_stops_at_once_and_nobody_writes_until_it_is_free(
    kube: k8s.ApiClient, namespace: str, audit_log: Path, replicas: list[Replica]
) -> None:
    """While another holds the Lease, neither replica writes for QUIET_WINDOW (tests/cluster/quiet.py),
    though a deleted Deployment begs for it: this catches a writer of a period up to 30 s (the re-list
    of an unserved route CRD, far longer than these replicas' 4 s lease and its 0.5 s renewal tries)."""
    leader, standby = replicas
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(0))
    isvcs.wait_ready("iris-0")

    # Somebody else (a newer deployment of the operator, say) takes the lease for a long while.
    leases = k8s.CoordinationV1Api(kube)
    lease = leases.read_namespaced_lease(LEASE, namespace)
    lease.spec.holder_identity = "intruder"
    lease.spec.lease_duration_seconds = 3600
    leases.replace_namespaced_lease(LEASE, namespace, lease)
    eventually(lambda: leader.metric("kubeserve_leader ") == 0.0, LEASE_SECONDS, "the leader to step down")

    tail = AuditTail(audit_log)
    apps = k8s.AppsV1Api(kube)
    apps.delete_namespaced_deployment("iris-0-predictor", namespace)
    time.sleep(QUIET_WINDOW)
    assert not _object_writes(tail, namespace), "a replica without the lease wrote"
    assert not apps.list_namespaced_deployment(namespace).items

    lease = leases.read_namespaced_lease(LEASE, namespace)
    lease.spec.holder_identity = None
    leases.replace_namespaced_lease(LEASE, namespace, lease)
    eventually(lambda: apps.list_namespaced_deployment(namespace).items, 30, "the Deployment restored")
    assert holder(kube, namespace) in {leader.identity, standby.identity}


def test_a_paused_leader_is_replaced_and_writes_nothing_when_it_resumes(
    kube: k8s.ApiClient, namespace: str, audit_log: Path, replicas: list[Replica]
) -> None:
    """The resumed leader writes nothing for QUIET_WINDOW after it resumes (tests/cluster/quiet.py):
    this catches a write it would send on any timer of a period up to 30 s, its lease renewal included."""
    leader, standby = replicas
    isvcs = Isvcs(kube, namespace)
    isvcs.apply(_service(0))
    isvcs.wait_ready("iris-0")

    leader.process.send_signal(signal.SIGSTOP)  # a long GC pause, a frozen node: it cannot renew
    try:
        eventually(lambda: holder(kube, namespace) == standby.identity, 30, "the standby to take the lease")
    finally:
        leader.process.send_signal(signal.SIGCONT)
    tail = AuditTail(audit_log)
    apps = k8s.AppsV1Api(kube)
    apps.delete_namespaced_deployment("iris-0-predictor", namespace)
    eventually(lambda: apps.list_namespaced_deployment(namespace).items, 30, "the Deployment restored")
    time.sleep(QUIET_WINDOW)
    writers = {r.user_agent for r in _object_writes(tail, namespace)}
    assert writers and all(standby.wrote(r) for r in _object_writes(tail, namespace)), writers
    assert leader.metric("kubeserve_leader ") == 0.0
