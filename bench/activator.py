"""The activator's cost on the warm path and its cold starts, against a real kubeserve-server on loopback.

1. Warm: wrk at c=8 (and c=1) posts a one-row iris request to the model server directly and through
   the activator (Host header `iris.models`), in alternating rounds in the same run; p50 and p99 of
   each, the added latency and the ratio (medians over the rounds).
2. Cold: a fresh activator whose waker makes the backend's endpoint appear after a fixed delay (the
   pod "becomes Ready"); 50 concurrent requests; time to the first and the last response, every answer
   checked against the model, and the wakes counted from /metrics (must be 1).

The activator runs in its own process (servers/activator_process.py: uvloop, 100 services in its tables);
its resident memory is printed at the end. Unpinned: on this 2-core machine the load generator, the
activator and the model server share both cores, so at c=8 the activator's CPU shows as latency.
Not part of `make test`:

    .venv/bin/python bench/activator.py [--rounds 4] [--duration 3] [--wake-delay 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import joblib
import numpy as np
from bench_model_server import rss_mib, wrk
from servers.activator_process import SERVICES
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.devcluster.ports import free_port

HERE = Path(__file__).resolve().parent
COLD_REQUESTS = 50
CLIENTS = (8, 1)  # c=8, the warm-overhead goal's load; c=1: the per-request cost without CPU contention


def wait_until_answers(url: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} never answered 200")
        time.sleep(0.05)


@contextmanager
def process(command: list[str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, up once `ready_url` answers 200, stopped by its own PID."""
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(ready_url)
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)


def activator_process(backend_port: int, wake_delay: float | None) -> tuple[list[str], int, int]:
    port, admin_port = free_port(), free_port()
    command = [sys.executable, str(HERE / "servers" / "activator_process.py"), str(port), str(admin_port)]
    command += [str(backend_port), *([] if wake_delay is None else [str(wake_delay)])]
    return command, port, admin_port


async def cold_burst(
    port: int, admin_port: int, rows: np.ndarray, expected: list[int]
) -> tuple[float, float]:
    """50 concurrent requests at a cold activator: seconds to the first and the last answer."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Host": "iris.models.svc.cluster.local"},
        timeout=60,
        limits=httpx.Limits(max_connections=COLD_REQUESTS),
    ) as client:
        started = time.perf_counter()

        async def one(row: np.ndarray) -> tuple[float, int]:
            body = {
                "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row.tolist()}]
            }
            response = await client.post("/v2/models/iris/infer", json=body)
            if response.status_code != 200:
                raise AssertionError(f"cold request answered {response.status_code}: {response.text}")
            return time.perf_counter() - started, response.json()["outputs"][0]["data"][0]

        answers = await asyncio.gather(*(one(row) for row in rows))
        metrics = (await client.get(f"http://127.0.0.1:{admin_port}/metrics")).text
    if [label for _, label in answers] != expected:
        raise AssertionError("a cold request got another row's answer")
    if 'kubeserve_activator_wakes_total{service="models/iris"} 1.0' not in metrics:
        raise AssertionError(f"not exactly one wake:\n{metrics}")
    times = [seconds for seconds, _ in answers]
    return min(times), max(times)


def bench(args: argparse.Namespace) -> None:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "iris"
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        body = Path(tmp) / "body.json"
        row = {
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
        }
        body.write_text(json.dumps(row))
        backend_port = free_port()
        backend = [sys.executable, "-m", "kubeserve_server", "--model_name=iris", f"--model_dir={model_dir}"]
        backend += ["--host=127.0.0.1", f"--http_port={backend_port}", f"--grpc_port={free_port()}"]
        direct = f"http://127.0.0.1:{backend_port}"
        with process(backend, f"{direct}/v2/health/ready"):
            command, port, admin_port = activator_process(backend_port, wake_delay=None)
            with process(command, f"http://127.0.0.1:{admin_port}/healthz") as warm_activator:
                proxied = f"http://127.0.0.1:{port}"
                paths = {"direct": (direct, None), "activator": (proxied, "iris.models")}
                for url, host in paths.values():  # warm-up, not kept
                    wrk(f"{url}/v2/models/iris/infer", body, 8, 1, host, core=None)
                runs: dict[tuple[int, str], list[dict[str, float]]] = {}
                for _ in range(args.rounds):
                    for clients in CLIENTS:
                        for name, (url, host) in paths.items():
                            result = wrk(
                                f"{url}/v2/models/iris/infer", body, clients, args.duration, host, core=None
                            )
                            runs.setdefault((clients, name), []).append(result)
                memory = rss_mib(warm_activator.pid)
            rows = features[::3][:COLD_REQUESTS]
            expected = model.predict(rows).tolist()
            colds: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                command, port, admin_port = activator_process(backend_port, wake_delay=args.wake_delay)
                with process(command, f"http://127.0.0.1:{admin_port}/healthz"):
                    colds.append(asyncio.run(cold_burst(port, admin_port, rows, expected)))

    median = {
        case: {key: statistics.median(run[key] for run in results) for key in ("p50_ms", "p99_ms")}
        for case, results in runs.items()
    }
    print(f"warm, one-row iris v2 request, median of {args.rounds} rounds of {args.duration} s:")
    for clients in CLIENTS:
        for name in ("direct", "activator"):
            figures = median[(clients, name)]
            print(f"  c={clients} {name:9} p50 {figures['p50_ms']:.2f} ms   p99 {figures['p99_ms']:.2f} ms")
        for key in ("p50_ms", "p99_ms"):
            added = median[(clients, "activator")][key] - median[(clients, "direct")][key]
            ratio = median[(clients, "activator")][key] / median[(clients, "direct")][key]
            print(f"  c={clients} added at {key[:3]}: {added:+.2f} ms (x{ratio:.2f})")
    first = statistics.median(cold[0] for cold in colds)
    last = statistics.median(cold[1] for cold in colds)
    print(
        f"cold, {COLD_REQUESTS} concurrent requests, endpoint Ready {args.wake_delay:g} s after the wake,"
        f" median of {args.rounds} rounds: first answer {first:.3f} s, last {last:.3f} s"
        f" (per round: {', '.join(f'{a:.3f}/{b:.3f}' for a, b in colds)}); 0 errors, one wake each"
    )
    print(f"activator RSS with {SERVICES} services, after the warm runs: {memory:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="measurements per case; the median is kept")
    parser.add_argument("--duration", type=int, default=3, help="seconds of wrk load per warm measurement")
    parser.add_argument("--wake-delay", type=float, default=2.0, help="seconds from wake to Ready endpoint")
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
