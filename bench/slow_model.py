"""A slow model (gradient boosting, about 5 ms a prediction): inference p99 and health latency under load.

The iris model is the best case for predicting inline on the event loop. This serves
bench_model_server.py's slow model, pinned to core 0, and drives it with wrk from core 1 at c=8
and c=64 (1 row of FP64) while a probe thread asks `/v2/health/live` every 50 ms, as a kubelet
would; it reports inference requests/s and p50/p99, and the probes' p50/p99/worst. With
`--before REV` the server as committed at REV is measured too, in alternating rounds, for a
before/after in one run. Not part of `make test`:

    .venv/bin/python bench/slow_model.py [--before REV] [--duration 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
from bench_model_server import Target, body_for, kubeserve_at, kubeserve_target, median, started, train, wrk

CONCURRENCIES = (8, 64)
PROBE_INTERVAL = 0.05


def probed(target: Target, body: Path, concurrency: int, seconds: int) -> dict[str, float]:
    """One wrk run, with liveness probed all through it."""
    live = target.ready_path.split("/v2/", 1)[0] + "/v2/health/live"
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.wait(PROBE_INTERVAL):
                started = time.perf_counter()
                client.get(live).raise_for_status()
                latencies.append(time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        figures = wrk(target.infer_path, body, concurrency, seconds)
    finally:
        done.set()
        prober.join()
    probes = np.array(latencies) * 1000
    return {
        **figures,
        "live_p50_ms": float(np.percentile(probes, 50)),
        "live_p99_ms": float(np.percentile(probes, 99)),
        "live_max_ms": float(probes.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="also measure kubeserve_server as committed at this revision")
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per case; the median is kept")
    args = parser.parse_args()

    model, features, name = train("slow")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="kubeserve-slow-model-") as work_dir:
        work = Path(work_dir)
        model_dir = work / name
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        body = work / "body.json"
        body.write_bytes(body_for(features[:1]))
        servers = [kubeserve_target("kubeserve", name, model_dir, {})]
        if args.before:
            env = kubeserve_at(args.before, work)
            servers.append(kubeserve_target(f"kubeserve@{args.before}", name, model_dir, env))
        for _ in range(args.rounds):
            for target in servers:
                with started(target, work / f"{target.name}.log", dict(os.environ)):
                    wrk(target.infer_path, body, 8, 1)  # warm up
                    for concurrency in CONCURRENCIES:
                        runs.setdefault((target.name, concurrency), []).append(
                            probed(target, body, concurrency, args.duration)
                        )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"{'server':22} {'c':>3} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'live p50':>9} {'live p99':>9} {'live max':>9}"
    )
    for (server, concurrency), results in runs.items():
        figures = median(results)
        print(
            f"{server:22} {concurrency:>3} {figures['rps']:>7.0f} {figures['p50_ms']:>7.1f} "
            f"{figures['p99_ms']:>7.1f} {figures['live_p50_ms']:>9.1f} {figures['live_p99_ms']:>9.1f} "
            f"{figures['live_max_ms']:>9.1f}"
        )


if __name__ == "__main__":
    main()
