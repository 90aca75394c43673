"""Throughput and latency of kubeserve-server with and without adaptive batching, in one run.

64 clients in a closed loop (wrk, 64 connections, each sending its next request once answered)
post one-row v2 requests to the iris model (logistic regression, trained here). Two servers run
side by side on core 0, one at its defaults and one with `--max_batch_size 32
--max_batch_latency_ms 5`; wrk runs on core 1, on 127.0.0.1 only. Both servers' answers are checked
against `model.predict` first; the rounds alternate between them, and each keeps its median round.
Prints requests/s and p50/p99 latency for both, the ratio, and the batched server's mean batch size
(`kubeserve_batch_size`). Not part of `make test`:

    .venv/bin/python bench/batching.py [--duration 8] [--rounds 3] [--size 32] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import httpx
import joblib
from bench_model_server import Target, body_for, check_answers, median, started, wrk
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.devcluster.ports import free_port

CLIENTS = 64


def kubeserve(name: str, model_dir: Path, *flags: str) -> Target:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "kubeserve_server", "--model_name=iris", f"--model_dir={model_dir}"]
    command += ["--host=127.0.0.1", f"--http_port={port}", f"--grpc_port={free_port()}", *flags]
    return Target(name, command, f"{url}/v2/models/iris/infer", f"{url}/v2/models/iris/ready")


def batch_sizes(target: Target) -> tuple[float, float]:
    """The batched server's `kubeserve_batch_size` count and sum so far."""
    metrics = httpx.get(target.ready_path.replace("/v2/models/iris/ready", "/metrics")).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name in ("kubeserve_batch_size_count", "kubeserve_batch_size_sum")
    }
    return values["kubeserve_batch_size_count"], values["kubeserve_batch_size_sum"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="--max_batch_size")
    parser.add_argument("--latency-ms", type=float, default=5, help="--max_batch_latency_ms")
    args = parser.parse_args()

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-batching-") as tmp:
        work = Path(tmp)
        model_dir = work / "iris"
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        body = work / "one-row.json"
        body.write_bytes(body_for(features[:1]))
        flags = [f"--max_batch_size={args.size}", f"--max_batch_latency_ms={args.latency_ms:g}"]
        targets = [kubeserve("unbatched", model_dir), kubeserve("batched", model_dir, *flags)]
        runs: dict[str, list[dict[str, float]]] = {target.name: [] for target in targets}
        with contextlib.ExitStack() as stack:
            for target in targets:
                stack.enter_context(started(target, work / f"{target.name}.log", dict(os.environ)))
                check_answers(target, {"1 row": body}, {"1 row": model.predict(features[:1]).tolist()})
            before = batch_sizes(targets[1])
            for round_ in range(args.rounds):
                for target in targets:
                    result = wrk(target.infer_path, body, CLIENTS, args.duration)
                    runs[target.name].append(result)
                    print(
                        f"round {round_ + 1} {target.name}: {result['rps']:.0f} req/s, "
                        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms",
                        flush=True,
                    )
            count, rows = (
                after - first for after, first in zip(batch_sizes(targets[1]), before, strict=True)
            )
    plain, batched = median(runs["unbatched"]), median(runs["batched"])
    print(f"\n{CLIENTS} clients, one-row v2 requests, median of {args.rounds} rounds of {args.duration} s")
    for name, result in (("unbatched", plain), (f"batched ({' '.join(flags)})", batched)):
        print(
            f"{name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
        )
    print(
        f"batched / unbatched: throughput x{batched['rps'] / plain['rps']:.2f}, "
        f"p50 x{batched['p50_ms'] / plain['p50_ms']:.2f}, p99 x{batched['p99_ms'] / plain['p99_ms']:.2f}; "
        f"mean batch {rows / count:.1f} rows over {count:.0f} model calls"
    )


if __name__ == "__main__":
    main()
