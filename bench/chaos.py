"""Chaos run: the operator, the API server and etcd fail while services are applied; everything converges.

Starts its own control plane and operator, then:

1. **Kills.** Applies N sklearn InferenceServices at once while SIGKILLing the
   operator every `--kill-every` seconds (and starting a new one at once). Then
   waits until all are Ready and counts orphans (a child whose service is gone)
   and duplicates (a component with more than one Deployment per track).
2. **API server and etcd.** Kills the API server (SIGKILL) and starts it again
   with the same command line, then pauses etcd (SIGSTOP) for `--pause` seconds.
   After etcd resumes, every service is changed (a new revision) and the time
   from the resume until each has a verdict for its new generation (the
   operator's part), and until all report Ready for it, is measured: the
   operator's watches must have resumed by themselves.
3. **Drift.** Edits a Deployment's replicas by hand, several times, and measures
   the time until the operator restored it.

Loopback only; every process is stopped by its own PID, every loop is bounded.
Not part of `make test`:

    .venv/bin/python bench/chaos.py [--services 200] [--kill-every 1.5] [--pause 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from reconcile import ISVC_PATH, Batch, Operator, admin_client, extra_nodes, isvc, prepare, run_batch

from kubeserve.devcluster.cluster import ClusterState, LocalControlPlane
from kubeserve.planning.naming import LABEL_COMPONENT, LABEL_SERVICE
from kubeserve.planning.rollout import LABEL_TRACK

TIMEOUT = 600.0


class KilledRepeatedly:
    """An operator SIGKILLed every `every` seconds and started again at once, until stopped."""

    def __init__(self, state: ClusterState, workdir: Path, every: float) -> None:
        self.state, self.workdir, self.every = state, workdir, every
        self.kills = 0
        self.operator = self._start()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _start(self) -> Operator:
        return Operator(self.state, self.workdir / f"operator-{self.kills}.log")

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            self.operator.stop(signal.SIGKILL)
            self.kills += 1
            self.operator = self._start()

    def stop_killing(self) -> Operator:
        """Stop the kills; the operator then running is left running and returned."""
        self._stopping.set()
        self._thread.join()
        return self.operator


async def children(http: httpx.AsyncClient, namespace: str) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for kind, path in (
        ("Deployment", f"/apis/apps/v1/namespaces/{namespace}/deployments"),
        ("Service", f"/api/v1/namespaces/{namespace}/services"),
    ):
        response = await http.get(path, params={"labelSelector": LABEL_SERVICE})
        response.raise_for_status()
        found[kind] = response.json()["items"]
    return found


async def orphans_and_duplicates(
    http: httpx.AsyncClient, namespace: str, services: set[str]
) -> tuple[int, int]:
    found = await children(http, namespace)
    owners = [obj["metadata"]["labels"][LABEL_SERVICE] for objs in found.values() for obj in objs]
    orphans = sum(1 for owner in owners if owner not in services)
    tracks = Counter(
        (
            d["metadata"]["labels"][LABEL_SERVICE],
            d["spec"]["template"]["metadata"]["labels"].get(LABEL_COMPONENT),
            d["spec"]["template"]["metadata"]["labels"].get(LABEL_TRACK),
        )
        for d in found["Deployment"]
    )
    return orphans, sum(count - 1 for count in tracks.values())


def kills(state: ClusterState, workdir: Path, services: int, every: float) -> dict[str, float]:
    batch = Batch(services, "chaos")
    chaos = KilledRepeatedly(state, workdir, every)

    async def go() -> tuple[int, int]:
        async with admin_client(state) as http:
            await asyncio.wait_for(run_batch(http, batch), TIMEOUT)
            return await orphans_and_duplicates(http, batch.namespace, set(batch.applied))

    try:
        orphans, duplicates = asyncio.run(go())
    finally:
        chaos.stop_killing().stop()
    return {
        "services": services,
        "operator_kills": chaos.kills,
        "all_ready_s": max(batch.ready.values()) - batch.started,
        "orphans": orphans,
        "duplicates": duplicates,
    }


async def _at_generation(http: httpx.AsyncClient, namespace: str) -> tuple[int, int]:
    """How many services have a verdict for their current spec (the operator acted on it: the new
    revision applied), and how many of those are Ready (its pods rolled out by the control plane)."""
    response = await http.get(ISVC_PATH.format(namespace=namespace))
    if response.status_code != 200:
        return 0, 0
    seen = ready = 0
    for item in response.json()["items"]:
        status = item.get("status") or {}
        if status.get("observedGeneration") == item["metadata"]["generation"]:
            seen += 1
            ready += {c["type"]: c["status"] for c in status.get("conditions") or []}.get("Ready") == "True"
    return seen, ready


async def _change_every_service(http: httpx.AsyncClient, namespace: str, services: int) -> None:
    async def change(name: str) -> None:
        body = isvc(namespace, name)
        body["spec"]["predictor"]["model"]["resources"]["requests"]["memory"] = "17Mi"  # a new revision
        response = await http.patch(
            f"{ISVC_PATH.format(namespace=namespace)}/{name}",
            params={"fieldManager": "kubeserve-bench", "force": "true"},
            content=json.dumps(body),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()

    await asyncio.gather(*(change(f"m-{i:04d}") for i in range(services)))


def control_plane_failures(
    plane: LocalControlPlane, workdir: Path, services: int, pause: float
) -> dict[str, float]:
    state = plane.state()
    assert state is not None
    operator = Operator(state, workdir / "operator-control-plane.log")
    try:
        plane.kill_and_restart("kube-apiserver")
        etcd = state.processes["etcd"]

        async def go() -> tuple[float, float]:
            async with admin_client(state) as http:
                for _ in range(300):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
                os.kill(etcd, signal.SIGSTOP)
                try:
                    await asyncio.sleep(pause)
                finally:
                    os.kill(etcd, signal.SIGCONT)
                resumed = time.monotonic()
                for _ in range(300):
                    try:
                        await _change_every_service(http, "chaos", services)
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.5)
                deadline = resumed + TIMEOUT
                acted: float | None = None
                while (counts := await _at_generation(http, "chaos")) != (services, services):
                    if acted is None and counts[0] == services:
                        acted = time.monotonic() - resumed
                    if time.monotonic() > deadline:
                        raise TimeoutError("services did not converge after etcd resumed")
                    await asyncio.sleep(0.2)
                return acted or time.monotonic() - resumed, time.monotonic() - resumed

        acted, converged = asyncio.run(go())
        alive = operator.process.poll() is None
    finally:
        operator.stop()
    return {
        "etcd_pause_s": pause,
        "all_acted_on_after_resume_s": acted,
        "all_ready_after_resume_s": converged,
        "operator_survived": float(alive),
    }


def drift(state: ClusterState, workdir: Path, samples: int) -> dict[str, float]:
    operator = Operator(state, workdir / "operator-drift.log")
    path = "/apis/apps/v1/namespaces/chaos/deployments/m-0000-predictor"
    times = []
    try:

        async def go() -> None:
            async with admin_client(state) as http:
                for _ in range(300):  # the new operator has listed and settled
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(5)
                for _ in range(samples):
                    patch = {"spec": {"replicas": 3}}
                    headers = {"Content-Type": "application/merge-patch+json"}
                    (await http.patch(path, content=json.dumps(patch), headers=headers)).raise_for_status()
                    edited = time.monotonic()
                    while (await http.get(path)).json()["spec"]["replicas"] != 1:
                        if time.monotonic() - edited > 30:
                            raise TimeoutError("the edit was not undone")
                        await asyncio.sleep(0.02)
                    times.append(time.monotonic() - edited)
                    await asyncio.sleep(1)

        asyncio.run(go())
    finally:
        operator.stop()
    return {
        "samples": samples,
        "restored_min_s": min(times),
        "restored_median_s": statistics.median(times),
        "restored_max_s": max(times),
    }


def report(title: str, figures: dict[str, float]) -> None:
    print(f"\n== {title} ==", flush=True)
    for key, value in figures.items():
        print(f"  {key:26} {value:10.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=1.5, help="seconds between operator kills")
    parser.add_argument("--pause", type=float, default=20.0, help="seconds etcd stays paused")
    parser.add_argument("--drift-samples", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="kubeserve-chaos-"))
    plane = LocalControlPlane(workdir / "cluster")
    try:
        state = plane.up()
        asyncio.run(prepare(state, extra_nodes([args.services])))
        killed = kills(state, workdir, args.services, args.kill_every)
        report("operator killed while applying", killed)
        failures = control_plane_failures(plane, workdir, args.services, args.pause)
        report("API server killed, etcd paused, every service changed", failures)
        drifted = drift(state, workdir, args.drift_samples)
        report("a Deployment edited by hand", drifted)
    finally:
        plane.down()
        if args.keep:
            print(f"\nlogs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    checks = {
        "no orphans, no duplicates after the kills": killed["orphans"] == killed["duplicates"] == 0,
        "the operator outlived the API server and etcd": failures["operator_survived"] == 1.0,
        "drift undone within 1 s": drifted["restored_max_s"] < 1.0,
    }
    print("\n== summary ==")
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
