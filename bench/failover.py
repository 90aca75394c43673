"""Fail-over benchmark: a warm standby replica against a cold restart, with hundreds of services.

Starts its own control plane, runs two leader-elected replicas (`--leader-elect`,
default 15 s lease), applies N sklearn InferenceServices and waits for all to
be Ready. Then:

1. kills the leader (SIGKILL) and measures, from the kill, the time until the
   standby holds the Lease and until it has re-examined every service (its
   `--debug` line per reconcile), and the writes it sent to the services
   (target: none; everything was already right);
2. as the baseline, stops that replica too and starts one cold (no standby),
   measuring the same from its start.

Also reports the peak RSS (VmHWM) of the leader before the kill and of the standby after it has
taken over. Loopback only;
every loop is bounded. Not part of `make test`:

    .venv/bin/python bench/failover.py [--services 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconcile import (
    NODE_PODS,
    Batch,
    Operator,
    admin_client,
    operator_requests,
    prepare,
    run_batch,
    settle,
)

from kubeserve.devcluster.audit import AuditTail
from kubeserve.devcluster.cluster import ClusterState, LocalControlPlane

NAMESPACE = "kubeserve-system"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/kubeserve-operator"
TIMEOUT = 600.0


class Replica(Operator):
    """A leader-elected `kubeserve run`; the Lease names it by host and PID."""

    def __init__(self, state: ClusterState, log: Path) -> None:
        super().__init__(state, log, args=("--leader-elect", "--operator-namespace", NAMESPACE))

    @property
    def identity(self) -> str:
        return f"{os.uname().nodename}-{self.pid}"


async def holder(state: ClusterState) -> str | None:
    async with admin_client(state) as http:
        response = await http.get(LEASE_PATH)
        return response.json()["spec"].get("holderIdentity") if response.status_code == 200 else None


def wait_for(what: str, probe: Callable[[], bool], timeout: float = TIMEOUT) -> float:
    """Seconds until `probe()` is true."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic() - started


def take_over(state: ClusterState, replica: Replica, since: float, services: int) -> dict[str, float]:
    """From `since` (wall clock): the Lease held by `replica`, every service re-examined, its writes."""
    tail = AuditTail(state.audit_log)
    wait_for("the lease", lambda: asyncio.run(holder(state)) == replica.identity)
    leading = time.time() - since
    wait_for("every service re-examined", lambda: len(replica.reconciled(since)) >= services)
    examined = time.time() - since
    settle(state.audit_log)
    writes = [r for r in operator_requests(tail, f"/{replica.pid})") if r.is_write]
    return {"lease_s": leading, "all_reexamined_s": examined, "writes": len(writes)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="kubeserve-failover-"))
    plane = LocalControlPlane(workdir / "cluster")
    replicas: list[Replica] = []
    try:
        state = plane.up()
        # kwok nodes for every service's pod, with one to spare.
        asyncio.run(prepare(state, -(-args.services // NODE_PODS) + 1))
        subprocess.run(
            ["kubectl", "--kubeconfig", state.kubeconfig, "create", "namespace", NAMESPACE],
            check=True,
            capture_output=True,
        )
        leader = Replica(state, workdir / "leader.log")
        replicas.append(leader)
        wait_for("the first leader", lambda: asyncio.run(holder(state)) == leader.identity, 60)
        standby = Replica(state, workdir / "standby.log")
        replicas.append(standby)

        async def apply() -> None:
            async with admin_client(state) as http:
                await run_batch(http, Batch(args.services, "bench-failover"))

        asyncio.run(apply())
        settle(state.audit_log)
        # The leader's peak before it is killed; the standby's once it has taken over and
        # re-examined every service, which is the memory a standby must be given room for.
        rss = {"leader_peak_rss_mb": leader.peak_rss_mb()}
        killed = time.time()
        leader.stop(signal.SIGKILL)
        warm = take_over(state, standby, killed, args.services)
        rss["standby_peak_rss_after_takeover_mb"] = standby.peak_rss_mb()
        standby.stop()
        cold_replica = Replica(state, workdir / "cold.log")
        replicas.append(cold_replica)
        cold = take_over(state, cold_replica, cold_replica.started, args.services)
        cold["peak_rss_mb"] = cold_replica.peak_rss_mb()
    finally:
        for replica in replicas:
            replica.stop()
        plane.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n== {args.services} services, 15 s lease ==")
    for what, figures in (("memory", rss), ("standby takes over", warm), ("cold start (baseline)", cold)):
        print(f"  {what}")
        for key, value in figures.items():
            print(f"    {key:22} {value:10.2f}")
    ratio = (warm["all_reexamined_s"] - warm["lease_s"]) / (cold["all_reexamined_s"] - cold["lease_s"])
    print(f"  re-examining after the lease, warm standby vs cold start: x{ratio:.2f}")
    ok = warm["writes"] == 0 and cold["writes"] == 0
    print(f"  {'PASS' if ok else 'FAIL'}  zero writes after a takeover and after a cold start")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
