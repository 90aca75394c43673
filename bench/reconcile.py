"""Reconcile benchmark: hundreds of InferenceServices at once against a local control plane.

Starts its own control plane (in a temporary directory, stopped at the end even
on failure), installs the CRDs and shipped runtimes, runs `kubeserve run` as a
subprocess, then:

0. the limit: for each size, the very Deployments and Services the operator
   would write for those services (planned by its own planner, without owner
   references), server-side applied at once straight to the API server with no
   operator at all, and the time until every Deployment has its pod ready;
1. applies 200, then 1000 sklearn InferenceServices at once, each batch in a
   namespace of its own, and reports the time until all are Ready (and as a
   ratio of the limit's time for the same size), p50/p99 of
   apply -> Ready per service (from one watch, not per-object polling), the
   operator's API requests per service (from the audit log, which for this run
   also records the reads of the admin identity the operator runs as), its
   writes in a quiet window from the moment all are Ready, and its peak RSS (VmHWM);
2. restarts the operator with all services in place and reports the time until
   every one was reconciled again (the operator's `--debug` line per reconcile)
   and the writes it sent (target: none).

The operator runs as shipped: from a virtualenv of its own with only `.[operator]` installed (the
operator image's `pip install '.[operator]'`), made once under the kubeserve cache root
(`bench-venvs/operator-<hash of pyproject.toml>`), not from the dev venv, whose extra packages (the
`kubernetes` client, which kopf imports whenever it is installed, cryptography, ...) the operator
image does not carry. The code it runs is a copy of operator/kubeserve taken when the run starts
(first in its path, before the venv's installed copy), so a run measures the tree as it was then,
restart included, whatever is edited meanwhile; the venv is rebuilt only when pyproject.toml changes.

Memory: the operator's VmRSS is sampled every second and its peak and last value reported for each
phase (start-up, each apply burst until all Ready, the quiet time after it, the restart's lists and
re-examination, after them). `--trace-memory` runs the operator under tracemalloc (bench/memtrace.py):
the top allocation sites at (about) the traced peak, at the end of each phase and at exit, written
beside the logs (use with `--keep`; tracing costs memory and time, so its RSS is not the operator's).

Loopback only; every loop is bounded. Not part of `make test`:

    .venv/bin/python bench/reconcile.py [--sizes 200 1000] [--profile DIR] [--trace-memory --keep]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from kubeserve.api.inference_service import InferenceService
from kubeserve.api.serving_runtime import ClusterServingRuntime
from kubeserve.apply.client import USER_AGENT_PRODUCT
from kubeserve.config import OperatorConfig
from kubeserve.devcluster import build
from kubeserve.devcluster.audit import AuditTail, Request
from kubeserve.devcluster.cluster import ClusterState, LocalControlPlane
from kubeserve.devcluster.nodes import NodeShape, node_manifest
from kubeserve.planning.plan import PlanInputs, plan_service

REPO = Path(__file__).resolve().parent.parent
ISVC_PATH = "/apis/serving.kubeserve.io/v1beta1/namespaces/{namespace}/inferenceservices"
DEPLOYMENTS_PATH = "/apis/apps/v1/namespaces/{namespace}/deployments"
NODE_PODS = 250
"""Pods per kwok node added for the benchmark."""
OPERATOR_AGENTS = (USER_AGENT_PRODUCT, "kopf/")
"""The operator's own requests and kopf's (its lists and watches)."""
READY_TIMEOUT = 1800.0
QUIET_WINDOW = 10.0
RECONCILED = re.compile(
    r"^\[([0-9-]+ [0-9:,]+)\] kubeserve\.reconciler\s+\[DEBUG\s*\] (\S+): reconciled", re.M
)
TARGETS = {"ready_1000_s": 120.0, "rss_mb": 150.0, "limit_ratio": 1.15}
RSS_SAMPLE_SECONDS = 1.0
MEMTRACE = Path(__file__).resolve().parent / "memtrace.py"
CHILD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
}


def isvc(namespace: str, name: str) -> dict[str, Any]:
    """The sklearn example with tiny requests, so that a thousand pods fit the simulated nodes."""
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model",
                    "resources": {
                        "requests": {"cpu": "5m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            }
        },
    }


def admin_client(state: ClusterState) -> httpx.AsyncClient:
    pki = Path(state.directory) / "pki"
    tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return httpx.AsyncClient(
        base_url=state.server,
        verify=tls,
        # A batch queues all its requests on 20 connections at once: the wait for one is not a timeout.
        timeout=httpx.Timeout(60.0, connect=5.0, pool=None),
        headers={"User-Agent": "kubeserve-bench"},
        limits=httpx.Limits(max_connections=20),
    )


def kubectl(state: ClusterState, *args: str) -> None:
    subprocess.run(["kubectl", "--kubeconfig", state.kubeconfig, *args], check=True, capture_output=True)


def armed(trace: Path) -> Path:
    """The file bench/memtrace.py writes once it handles SIGUSR1."""
    return trace.with_name(f"{trace.name}-armed")


def operator_python() -> Path:
    """The Python of a virtualenv with the operator's extra installed as its image does, made on first use.

    Keyed by pyproject.toml (the dependencies); the code that runs is the run's own copy (`Operator`).
    """
    pyproject = REPO / "pyproject.toml"
    key = hashlib.sha256(pyproject.read_bytes()).hexdigest()[:12]
    venv = build.cache_root() / "bench-venvs" / f"operator-{key}"
    python = venv / "bin" / "python"
    marker = venv / "kubeserve-bench-installed"
    if python.exists() and marker.exists():
        return python
    print(f"setting up {venv} (the operator's extra only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{REPO}[operator]"],
        check=True,
        timeout=900,
    )
    marker.write_text(str(pyproject))
    return python


class Operator:
    """`kubeserve run --debug [args]` as a subprocess of the shipped venv, stopped by its own PID.

    Its VmRSS is sampled every second, each sample tagged with the phase the benchmark is in.
    """

    def __init__(
        self,
        state: ClusterState,
        log: Path,
        profile: Path | None = None,
        args: tuple[str, ...] = (),
        trace: Path | None = None,
    ) -> None:
        self.log = log
        # The working tree as it was when the run's first operator started, for every operator of the run
        # (the restart too, even if the tree changes meanwhile); it shadows the venv's installed copy.
        source = log.parent / "operator-src"
        python = str(operator_python())
        if not source.exists():
            shutil.copytree(
                REPO / "operator" / "kubeserve",
                source / "kubeserve",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            # Compiled once, as in its image: otherwise every start (each of the chaos run's kills) would
            # compile the operator's modules again (0.35 s here) wherever PYTHONDONTWRITEBYTECODE is set.
            compile_bytecode = [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
            subprocess.run([*compile_bytecode, str(source)], check=True, stdout=subprocess.DEVNULL)
        command = [python, "-m", "kubeserve.cli", "run", "--debug", *args]
        if profile is not None:
            # cProfile counts a coroutine only while it runs, so the figures are CPU, not awaiting.
            command = [python, "-m", "cProfile", "-o", str(profile), *command[1:]]
        elif trace is not None:
            command = [python, str(MEMTRACE), str(trace), *command[1:]]
        self.trace = trace
        self.phase = "start-up"
        self.samples: list[tuple[str, float]] = []
        """(phase, VmRSS in MiB), one a second."""
        self.started = time.time()
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ | {"KUBECONFIG": state.kubeconfig, "PYTHONPATH": str(source)},
            )
        threading.Thread(target=self._sample, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _status_mb(self, field_name: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field_name}")

    def _sample(self) -> None:
        while self.process.poll() is None:
            try:
                self.samples.append((self.phase, self._status_mb("VmRSS")))
            except (OSError, RuntimeError):  # the process ended between the poll and the read
                return
            time.sleep(RSS_SAMPLE_SECONDS)

    async def while_alive(self, work: Coroutine[Any, Any, None]) -> None:
        """`work`, given up as soon as the operator exits: a batch would otherwise wait until its timeout."""
        task = asyncio.create_task(work)
        while not task.done():
            if (code := self.process.poll()) is not None:
                task.cancel()
                raise RuntimeError(f"the operator exited ({code}); see {self.log}")
            await asyncio.wait({task}, timeout=1.0)
        await task

    def enter(self, phase: str) -> None:
        """Tag the following RSS samples; under --trace-memory, have the last phase's allocations written
        (once memtrace handles SIGUSR1: before, the signal would end the process)."""
        if self.trace is not None and armed(self.trace).exists() and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
        self.phase = phase

    def rss_by_phase(self) -> str:
        """First, peak and last VmRSS of each phase, in the order they came: growth, transient, kept."""
        phases: dict[str, list[float]] = {}
        for phase, mb in self.samples:
            phases.setdefault(phase, []).append(mb)
        return "\n".join(
            f"  {phase:40} first {mbs[0]:6.1f}  peak {max(mbs):6.1f}  last {mbs[-1]:6.1f} MiB  ({len(mbs)} s)"
            for phase, mbs in phases.items()
        )

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the process ever had."""
        return self._status_mb("VmHWM")

    def reconciled(self, since: float = 0.0) -> dict[str, float]:
        """Service -> wall time of its first reconcile at or after `since`, from the debug log."""
        first: dict[str, float] = {}
        for stamp, service in RECONCILED.findall(self.log.read_text(errors="replace")):
            when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if when >= since:
                first.setdefault(service, when)
        return first

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Batch:
    size: int
    namespace: str
    applied: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    started: float = 0.0


async def watch_until_all(
    http: httpx.AsyncClient, batch: Batch, path: str, version: str, done: Callable[[dict[str, Any]], bool]
) -> None:
    """One watch on `path`: the first moment each object is `done`, until all of the batch are. A watch
    whose version expired (410: 5000 services' churn outruns the watch cache) lists and goes on from there."""
    while True:
        if not version:
            listed = (await http.get(path)).raise_for_status().json()
            for obj in listed["items"]:
                if done(obj):
                    batch.ready.setdefault(obj["metadata"]["name"], time.monotonic())
            if len(batch.ready) == batch.size:
                return
            version = listed["metadata"]["resourceVersion"]
        params = {
            "watch": "1",
            "resourceVersion": version,
            "timeoutSeconds": "60",
            "allowWatchBookmarks": "1",
        }
        async with http.stream("GET", path, params=params, timeout=None) as stream:
            async for line in stream.aiter_lines():
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR" and obj.get("code") == 410:
                    version = ""
                    break
                if event["type"] == "ERROR":
                    raise RuntimeError(f"watch failed: {obj}")
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK" and done(obj):
                    batch.ready.setdefault(obj["metadata"]["name"], time.monotonic())
                    if len(batch.ready) == batch.size:
                        return


def service_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def deployment_ready(obj: dict[str, Any]) -> bool:
    """All its pods ready."""
    return int((obj.get("status") or {}).get("readyReplicas", 0)) >= obj.get("spec", {}).get("replicas", 1)


async def apply_one(http: httpx.AsyncClient, batch: Batch, name: str) -> None:
    response = await http.patch(
        f"{ISVC_PATH.format(namespace=batch.namespace)}/{name}",
        params={"fieldManager": "kubeserve-bench", "force": "true"},
        content=json.dumps(isvc(batch.namespace, name)),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    response.raise_for_status()
    batch.applied[name] = time.monotonic()


async def namespace_ready(http: httpx.AsyncClient, namespace: str) -> None:
    (await http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})).raise_for_status()
    for _ in range(300):
        if (await http.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no default ServiceAccount in {namespace}")


async def list_settled(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """A list, retried while the API server answers 429 (a new CRD's storage is still initializing)."""
    for _ in range(60):
        response = await http.get(path)
        if response.status_code != 429:
            response.raise_for_status()
            listed: dict[str, Any] = response.json()
            return listed
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    raise TimeoutError(f"{path} kept answering 429")


def planned_children(namespace: str, name: str) -> list[dict[str, Any]]:
    """What the operator writes for `isvc(namespace, name)`, by its own planner, owned by nobody (an owner
    that does not exist would have the garbage collector delete them)."""
    body = {**isvc(namespace, name), "metadata": {"name": name, "namespace": namespace, "uid": "none"}}
    runtimes = [
        ClusterServingRuntime.model_validate(yaml.safe_load(path.read_text()))
        for path in sorted((REPO / "manifests" / "runtimes").glob("*.yaml"))
    ]
    plan = plan_service(
        InferenceService.model_validate(body), PlanInputs(config=OperatorConfig(), cluster_runtimes=runtimes)
    )
    children = []
    for obj in plan.objects:
        metadata = {key: value for key, value in obj["metadata"].items() if key != "ownerReferences"}
        children.append({**obj, "metadata": metadata})
    return children


async def apply_children(
    http: httpx.AsyncClient, batch: Batch, name: str, children: list[dict[str, Any]]
) -> None:
    for child in children:
        path = CHILD_PATHS[child["kind"]].format(namespace=batch.namespace, name=child["metadata"]["name"])
        response = await http.patch(
            path,
            params={"fieldManager": "kubeserve-bench", "force": "true"},
            content=json.dumps(child),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()
    batch.applied[name] = time.monotonic()


async def namespace_gone(http: httpx.AsyncClient, namespace: str) -> None:
    """Delete `namespace` and wait until the API server no longer has it (its objects with it)."""
    (await http.delete(f"/api/v1/namespaces/{namespace}")).raise_for_status()
    deadline = time.monotonic() + READY_TIMEOUT
    while (await http.get(f"/api/v1/namespaces/{namespace}")).status_code != 404:
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {namespace} still there")
        await asyncio.sleep(1.0)


def measure_limit(state: ClusterState, size: int) -> float:
    """Seconds from the first apply until every one of `size` planned Deployments has its pod ready.

    Its namespace is deleted afterwards: its children carry the service label, so an operator started
    later would list, watch and keep them all (the 5000-service run's view held 6200 services' worth).
    """
    batch = Batch(size, f"limit-{size}-{time.monotonic_ns() % 10**6}")
    planned = {f"m-{i:04d}": planned_children(batch.namespace, f"m-{i:04d}") for i in range(size)}

    async def go() -> None:
        async with admin_client(state) as http:
            await namespace_ready(http, batch.namespace)
            listed = await list_settled(http, DEPLOYMENTS_PATH.format(namespace=batch.namespace))
            watcher = asyncio.create_task(
                watch_until_all(
                    http,
                    batch,
                    DEPLOYMENTS_PATH.format(namespace=batch.namespace),
                    listed["metadata"]["resourceVersion"],
                    deployment_ready,
                )
            )
            batch.started = time.monotonic()
            await asyncio.gather(*(apply_children(http, batch, name, kids) for name, kids in planned.items()))
            await asyncio.wait_for(watcher, READY_TIMEOUT)
            await namespace_gone(http, batch.namespace)

    asyncio.run(go())
    seconds = max(batch.ready.values()) - batch.started
    print(f"\n== the limit: {size} services' Deployments and Services, no operator ==", flush=True)
    print(f"  {'all_ready_s':22} {seconds:10.2f}", flush=True)
    return seconds


async def run_batch(http: httpx.AsyncClient, batch: Batch) -> None:
    await namespace_ready(http, batch.namespace)
    listed = await list_settled(http, ISVC_PATH.format(namespace=batch.namespace))
    path = ISVC_PATH.format(namespace=batch.namespace)
    watcher = asyncio.create_task(
        watch_until_all(http, batch, path, listed["metadata"]["resourceVersion"], service_ready)
    )
    batch.started = time.monotonic()
    await asyncio.gather(*(apply_one(http, batch, f"m-{i:04d}") for i in range(batch.size)))
    await asyncio.wait_for(watcher, READY_TIMEOUT)


def operator_requests(tail: AuditTail, agent: str | None = None) -> list[Request]:
    """The operator's requests, without a leader-elected replica's Lease renewals (bench/failover.py)."""
    found = [
        r for r in tail.requests() if r.user_agent.startswith(OPERATOR_AGENTS) and r.resource != "leases"
    ]
    return [r for r in found if agent is None or agent in r.user_agent]


def settle(audit_log: str, seconds: float = 3.0, timeout: float = 300.0) -> None:
    """Until the operator has sent no write for `seconds`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = AuditTail(audit_log)
        time.sleep(seconds)
        if not [r for r in operator_requests(tail) if r.is_write]:
            return
    raise TimeoutError("the operator kept writing")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def breakdown(requests: list[Request]) -> str:
    counts = Counter(f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}" for r in requests)
    return ", ".join(f"{what}: {n}" for what, n in counts.most_common())


def extra_nodes(sizes: list[int]) -> int:
    """Enough kwok nodes for the warm-up's pods, the limit's and the operator's, with one to spare."""
    pods = 10 + 2 * sum(sizes)
    return -(-pods // NODE_PODS) + 1


async def prepare(state: ClusterState, nodes: int) -> None:
    async with admin_client(state) as http:
        for index in range(nodes):
            shape = NodeShape(f"kwok-bench-{index}", cpu="96", memory="384Gi", pods=str(NODE_PODS))
            (await http.post("/api/v1/nodes", json=node_manifest(shape))).raise_for_status()
    kubectl(state, "apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl(state, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    kubectl(state, "apply", "--server-side", "-f", str(REPO / "manifests" / "runtimes"))
    kubectl(state, "wait", "--for=condition=Ready", "--timeout=60s", "node", "--all")


def measure_batch(state: ClusterState, operator: Operator, size: int) -> dict[str, float]:
    batch = Batch(size, f"bench-{size}")
    tail = AuditTail(state.audit_log)

    async def go() -> None:
        async with admin_client(state) as http:
            await operator.while_alive(run_batch(http, batch))

    operator.enter(f"{size}: apply until all Ready")
    asyncio.run(go())
    operator.enter(f"{size}: from all Ready, quiet and settle")
    # The quiet window starts the moment every service reports Ready: whatever the operator writes after
    # that (a last Event, a status it thought stale) counts.
    quiet = AuditTail(state.audit_log)
    all_ready = max(batch.ready.values()) - batch.started
    latencies = [batch.ready[name] - batch.applied[name] for name in batch.ready]
    time.sleep(QUIET_WINDOW)
    quiet_writes = [r for r in operator_requests(quiet) if r.is_write]
    settle(state.audit_log)
    during = operator_requests(tail)
    writes = [r for r in during if r.is_write]
    figures = {
        "size": size,
        "all_ready_s": all_ready,
        "p50_s": statistics.median(latencies),
        "p99_s": percentile(latencies, 0.99),
        "requests_per_service": len(during) / size,
        "writes_per_service": len(writes) / size,
        "quiet_writes": len(quiet_writes),
        "peak_rss_mb": operator.peak_rss_mb(),
        "load_average_1m": os.getloadavg()[0],
    }
    print(f"\n== {size} services ==", flush=True)
    for key, value in figures.items():
        print(f"  {key:22} {value:10.2f}")
    print(f"  writes: {breakdown(writes)}")
    print(f"  writes in the {QUIET_WINDOW:.0f} s from all Ready: {breakdown(quiet_writes) or 'none'}")
    print(f"  reads:  {breakdown([r for r in during if not r.is_write])}", flush=True)
    return figures


def measure_restart(
    state: ClusterState, workdir: Path, services: int, profile: Path | None, trace: bool
) -> dict[str, float]:
    tail = AuditTail(state.audit_log)
    operator = Operator(
        state, workdir / "operator-restart.log", profile, trace=workdir / "trace-restart" if trace else None
    )
    operator.phase = f"restart: lists, re-examine {services}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(operator.reconciled()) < services:
            if time.monotonic() > deadline or operator.process.poll() is not None:
                raise TimeoutError(
                    f"{len(operator.reconciled())} of {services} re-examined; see {operator.log}"
                )
            time.sleep(0.5)
        examined = max(operator.reconciled().values()) - operator.started
        operator.enter("restart: all re-examined, settle")
        settle(state.audit_log)
        writes = [r for r in operator_requests(tail, f"/{operator.pid})") if r.is_write]
        figures = {
            "services": services,
            "all_reexamined_s": examined,
            "writes": len(writes),
            "peak_rss_mb": operator.peak_rss_mb(),
            "load_average_1m": os.getloadavg()[0],
        }
        operator.enter("restart: end")
    finally:
        operator.stop()
    print("\n== restart ==", flush=True)
    for key, value in figures.items():
        print(f"  {key:22} {value:10.2f}")
    if writes:
        print(f"  writes: {breakdown(writes)}")
    print(
        f"  VmRSS by phase (sampled every {RSS_SAMPLE_SECONDS:.0f} s):\n{operator.rss_by_phase()}", flush=True
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument(
        "--profile", type=Path, help="write cProfile profiles of the operator here (first.prof, restart.prof)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="run the operator under tracemalloc (bench/memtrace.py): top allocations per phase in the "
        "work directory (trace-first-*.txt, trace-restart-*.txt); not with --profile",
    )
    parser.add_argument(
        "--no-limit",
        action="store_true",
        help="skip the limit (no ratios): the operator alone, as for a memory run",
    )
    args = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the control plane and the operator are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="kubeserve-bench-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    plane = LocalControlPlane(workdir / "cluster")
    operator: Operator | None = None
    try:
        state = plane.up(audit_reads=True)
        asyncio.run(prepare(state, extra_nodes(args.sizes)))
        limits: dict[int, float] = {}
        if not args.no_limit:
            measure_limit(
                state, 10
            )  # warm-up: the first batch after start-up pays for caches and connections
            limits = {size: measure_limit(state, size) for size in args.sizes}
        operator = Operator(
            state,
            workdir / "operator.log",
            args.profile and args.profile / "first.prof",
            trace=workdir / "trace-first" if args.trace_memory else None,
        )
        batches = [measure_batch(state, operator, size) for size in args.sizes]
        operator.enter("end")
        operator.stop()
        print(f"\n  VmRSS by phase (sampled every {RSS_SAMPLE_SECONDS:.0f} s):\n{operator.rss_by_phase()}")
        restart = measure_restart(
            state, workdir, sum(args.sizes), args.profile and args.profile / "restart.prof", args.trace_memory
        )
    finally:
        if operator is not None:
            operator.stop()
        plane.down()
        if args.keep:
            print(f"\nlogs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    first, last = batches[0], batches[-1]
    print("\n== summary ==")
    ratios = {b["size"]: b["all_ready_s"] / limits[int(b["size"])] for b in batches if limits}
    for size, ratio in ratios.items():
        print(
            f"  {size:.0f} services: all Ready in x{ratio:.2f} the limit's time ({limits[int(size)]:.1f} s)"
        )
    if len(batches) > 1:
        per_service = {
            "time to all Ready": (first["all_ready_s"] / first["size"], last["all_ready_s"] / last["size"]),
            "writes": (first["writes_per_service"], last["writes_per_service"]),
            "requests": (first["requests_per_service"], last["requests_per_service"]),
        }
        for what, (small, big) in per_service.items():
            print(f"  {what} per service, {last['size']} vs {first['size']}: x{big / small:.2f}")
    checks = {
        f"{last['size']} Ready < {TARGETS['ready_1000_s']:.0f} s": last["all_ready_s"]
        < TARGETS["ready_1000_s"],
        "zero writes from all Ready on": all(b["quiet_writes"] == 0 for b in batches),
        "zero writes after restart": restart["writes"] == 0,
        f"RSS < {TARGETS['rss_mb']:.0f} MB": max(b["peak_rss_mb"] for b in [*batches, restart])
        < TARGETS["rss_mb"],
    }
    if ratios:
        checks[f"{last['size']:.0f} within x{TARGETS['limit_ratio']} of the limit"] = (
            ratios[last["size"]] <= TARGETS["limit_ratio"]
        )
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
