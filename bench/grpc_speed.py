"""kubeserve-server's gRPC against its own REST, and against grpcio's floor: CPU per request.

One server serves the scikit-learn iris model, pinned to core 0; wrk (REST) and ghz (gRPC, one
connection) send it 1 row of FP64 from core 1, as bench_model_server.py does, at c=1 and c=8, in
alternating rounds (the median is kept). Beside requests/s it reports the server's CPU time per
request (all its threads, from /proc): on a shared machine the scheduler gives a many-threaded
process (gRPC's C core runs its own threads) more of the core than a single-threaded one, so
requests/s favour gRPC there, while CPU per request does not depend on that share. The floor is
grpc.aio answering ModelInfer with prebuilt bytes (servers/grpc_floor.py): what grpcio alone costs
per call, which the server paid until it served gRPC on its own HTTP/2 (grpc_http2.py). `--before REVISION`
runs the server as committed at REVISION beside today's (on the same core, measured in turn), for a
before and after in one run. Not part of `make test`:

    .venv/bin/python bench/grpc_speed.py [--duration 5] [--rounds 3] [--before REVISION]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import joblib
from bench_model_server import (
    HERE,
    Target,
    body_for,
    ghz,
    grpc_request_for,
    kubeserve_at,
    kubeserve_target,
    median,
    started,
    train,
    wrk,
)

from kubeserve.devcluster.ports import free_port

CONCURRENCIES = (1, 8)


def cpu_seconds(pid: int) -> float:
    """User plus system time of the process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def costed(pid: int, seconds: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """`run()`'s figures, and the server's CPU milliseconds per request while it ran."""
    before = cpu_seconds(pid)
    figures = run()
    return {**figures, "cpu_ms": (cpu_seconds(pid) - before) * 1000 / (figures["rps"] * seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per case; the median is kept")
    parser.add_argument(
        "--before", metavar="REVISION", help="also measure kubeserve_server as committed at REVISION"
    )
    args = parser.parse_args()

    model, features, name = train("iris")
    runs: dict[str, list[dict[str, float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="kubeserve-grpc-speed-") as work_dir,
        contextlib.ExitStack() as stack,
    ):
        work = Path(work_dir)
        model_dir = work / name
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        rest_body, grpc_body = work / "body.json", work / "request.json"
        rest_body.write_bytes(body_for(features[:1]))
        grpc_body.write_text(json.dumps(grpc_request_for(features[:1], "nested-fp64", name)))
        servers = [kubeserve_target("kubeserve", name, model_dir, {})]
        if args.before:
            servers.append(
                kubeserve_target(f"kubeserve@{args.before}", name, model_dir, kubeserve_at(args.before, work))
            )
        floor_grpc, floor_http = free_port(), free_port()
        floor = Target(
            "grpc-floor",
            [sys.executable, str(HERE / "servers" / "grpc_floor.py"), str(floor_grpc), str(floor_http)],
            "",
            f"http://127.0.0.1:{floor_http}/",
            grpc_address=f"127.0.0.1:{floor_grpc}",
        )
        pids = {
            target.name: stack.enter_context(
                started(target, work / f"{target.name}.log", dict(os.environ))
            ).pid
            for target in [*servers, floor]
        }
        for target in servers:  # warm both paths
            assert target.grpc_address is not None
            wrk(target.infer_path, rest_body, 8, 1)
            ghz(target.grpc_address, grpc_body, 8, 1)
        for _ in range(args.rounds):
            for c in CONCURRENCIES:
                seconds = args.duration
                cases: dict[str, tuple[int, Callable[[], dict[str, float]]]] = {}
                for target in servers:
                    assert target.grpc_address is not None
                    pid = pids[target.name]
                    cases[f"{target.name} REST c={c}"] = (
                        pid,
                        partial(wrk, target.infer_path, rest_body, c, seconds),
                    )
                    cases[f"{target.name} gRPC c={c}"] = (
                        pid,
                        partial(ghz, target.grpc_address, grpc_body, c, seconds),
                    )
                assert floor.grpc_address is not None
                cases[f"gRPC floor c={c}"] = (
                    pids[floor.name],
                    partial(ghz, floor.grpc_address, grpc_body, c, seconds),
                )
                for label, (pid, run) in cases.items():
                    runs.setdefault(label, []).append(costed(pid, seconds, run))
    results = {label: median(figures) for label, figures in runs.items()}
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    width = max(len(label) for label in results)
    print(f"{'case':{width}} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10}")
    for label, figures in results.items():
        print(
            f"{label:{width}} {figures['rps']:>8.0f} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f} "
            f"{figures['cpu_ms']:>10.3f}"
        )
    for target in servers:
        for c in CONCURRENCIES:
            rest, grpc = results[f"{target.name} REST c={c}"], results[f"{target.name} gRPC c={c}"]
            print(
                f"{target.name} c={c}: gRPC/REST {grpc['rps'] / rest['rps']:.2f}x req/s, "
                f"{grpc['cpu_ms'] / rest['cpu_ms']:.2f}x CPU per request"
            )


if __name__ == "__main__":
    main()
