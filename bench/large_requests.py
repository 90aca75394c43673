"""Probe latency and memory while kubeserve-server serves large JSON requests at once.

Eight clients each send one 54 MiB v2 JSON body to the iris model at the same time, while
/v2/health/live is probed every 20 ms (a liveness probe that stalls restarts a healthy server).
Prints the probes' latency (median, p99, worst) and the server's peak resident memory, its
decoding child included. Not part of `make test`:

    .venv/bin/python bench/large_requests.py [--clients 8] [--mib 54]
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import orjson
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.devcluster.ports import free_port

# Bytes of v2 JSON per row of four float64 features, as orjson writes random ones.
BYTES_PER_ROW = 80


def rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory of `pid`, and of its children (the decoding process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    sizes = [0, 0]
    pids = [pid, *(int(child) for child in children.read_text().split())] if children.exists() else [pid]
    for index, each in enumerate(pids):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[min(index, 1)] += int(line.split()[1]) * 1024
        except FileNotFoundError:
            continue
    return sizes[0], sizes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mib", type=float, default=54)
    args = parser.parse_args()

    features, labels = load_iris(return_X_y=True)
    rows = int(args.mib * 2**20 / BYTES_PER_ROW)
    data = np.random.default_rng(0).random((rows, 4)) * 8
    body = orjson.dumps(
        {"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP64", "data": data.tolist()}]}
    )
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "iris"
        model_dir.mkdir()
        joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), model_dir / "model.joblib")
        port = free_port()
        command = [sys.executable, "-m", "kubeserve_server", "--model_name=iris", f"--model_dir={model_dir}"]
        command += ["--host=127.0.0.1", f"--http_port={port}", f"--grpc_port={free_port()}"]
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if httpx.get(url + "/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            statuses: list[int] = []

            def post() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                connection.request("POST", "/v2/models/iris/infer", body)
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)

            clients = [threading.Thread(target=post) for _ in range(args.clients)]
            latencies: list[float] = []
            peak, peak_server, peak_children = 0, 0, 0
            started = time.perf_counter()
            with httpx.Client(base_url=url, timeout=60) as probe:
                for client in clients:
                    client.start()
                while any(client.is_alive() for client in clients):
                    sent = time.perf_counter()
                    probe.get("/v2/health/live")
                    latencies.append(time.perf_counter() - sent)
                    server_rss, children_rss = rss_bytes(server.pid)
                    peak = max(peak, server_rss + children_rss)
                    peak_server = max(peak_server, server_rss)
                    peak_children = max(peak_children, children_rss)
                    time.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(30)
    latencies.sort()
    median, p99 = (latencies[int(len(latencies) * q)] * 1000 for q in (0.5, 0.99))
    mib = len(body) / 2**20
    print(f"{args.clients} x {mib:.1f} MiB JSON, statuses {sorted(set(statuses))}, {elapsed:.1f} s")
    print(
        f"/v2/health/live over {len(latencies)} probes: median {median:.0f} ms, p99 {p99:.0f} ms,"
        f" worst {latencies[-1] * 1000:.0f} ms"
    )
    print(
        f"peak RSS: {peak / 2**20:.0f} MiB together; server {peak_server / 2**20:.0f} MiB,"
        f" its children {peak_children / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
