"""Compare Kubeserve's model server with KServe's, MLServer and a bare ASGI handler, in one run.

Every server serves the same scikit-learn iris model (trained here), pinned to core 0, and is
driven by the same load generator (wrk with post.lua) pinned to core 1, on 127.0.0.1 only. Each
server's answers are checked against `model.predict` before it is timed. For each server, body
(1 row, 64 rows) and concurrency (1, 8, 64) it prints requests per second and p50/p99 latency (the
median of several rounds, visiting the servers in turn), then the ratios to KServe (quiet, with
its per-request log lines off, and at its defaults) and to the bare handler, and each server's
resident memory.

KServe and MLServer pin old dependencies, so each gets its own virtualenv under
~/.cache/kubeserve/bench-venvs (made on first use). Not part of `make test`:

    .venv/bin/python bench/bench_model_server.py [--duration 3] [--rounds 3] [--only kubeserve,kserve]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.devcluster.ports import free_port

HERE = Path(__file__).resolve().parent
VENVS = Path.home() / ".cache" / "kubeserve" / "bench-venvs"
SERVER_CORE, LOAD_CORE = "0", "1"
CONCURRENCIES = (1, 8, 64)
BODIES = {"1 row": 1, "64 rows": 64}
# The same scikit-learn everywhere, so the one pickled model loads the same in every server.
SKLEARN = "scikit-learn==1.9.1"
VENV_PACKAGES = {
    "kserve": ["kserve==0.21.0", SKLEARN],
    # MLServer's inference worker fails to start with uvloop 0.23; 0.21 works.
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", SKLEARN, "uvloop==0.21.0"],
}


# KServe at its defaults writes a latency line and an access-log line per request; kubeserve-server
# writes neither. The quiet variant turns both off (no logging configured means no uvicorn access
# log), so the comparison is of serving, not of logging; its ratio is the headline.
KSERVE_VARIANTS = {
    "kserve": [],
    "kserve-quiet": ["--enable_latency_logging=False", "--configure_logging=False"],
}


def venv_python(name: str) -> Path:
    """The Python of the named comparison virtualenv, created and filled on first use."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / "kubeserve-bench-packages.txt"
    wanted = "\n".join(VENV_PACKAGES[name])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"setting up {venv} ({', '.join(VENV_PACKAGES[name])}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES[name]], check=True, timeout=1800
    )
    marker.write_text(wanted)
    return python


@dataclass
class Target:
    name: str
    command: list[str]
    infer_path: str
    ready_path: str
    cwd: Path | None = None


def targets(model_dir: Path, work: Path, only: set[str]) -> Iterator[Target]:
    model_file = model_dir / "model.joblib"
    if "kubeserve" in only:
        port = free_port()
        yield Target(
            "kubeserve",
            [
                sys.executable,
                "-m",
                "kubeserve_server",
                "--model_name=iris",
                f"--model_dir={model_dir}",
                "--host=127.0.0.1",
                f"--http_port={port}",
                f"--grpc_port={free_port()}",
            ],
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            f"http://127.0.0.1:{port}/v2/models/iris/ready",
        )
    for name, quiet in KSERVE_VARIANTS.items():
        if name not in only:
            continue
        port = free_port()
        yield Target(
            name,
            [
                str(venv_python("kserve")),
                str(HERE / "servers" / "kserve_iris.py"),
                str(model_file),
                f"--http_port={port}",
                f"--grpc_port={free_port()}",
                *quiet,
            ],
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            f"http://127.0.0.1:{port}/v2/models/iris/ready",
        )
    if "mlserver" in only:
        port = free_port()
        settings = work / "mlserver"
        (settings / "iris").mkdir(parents=True, exist_ok=True)
        (settings / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                }
            )
        )
        (settings / "iris" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "iris",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(model_file)},
                }
            )
        )
        python = venv_python("mlserver")
        yield Target(
            "mlserver",
            [str(python.parent / "mlserver"), "start", str(settings)],
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            f"http://127.0.0.1:{port}/v2/models/iris/ready",
        )
    if "bare" in only:
        port = free_port()
        yield Target(
            "bare",
            [sys.executable, str(HERE / "servers" / "bare_asgi.py"), str(model_file), str(port)],
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            f"http://127.0.0.1:{port}/",
        )


def _process_tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
            pids.extend(int(child) for child in task.read_text().split())
        index += 1
    return pids


def rss_mib(pid: int) -> float:
    """Resident memory of a server and all its child processes (MLServer runs a worker process)."""
    total_kib = 0
    for member in _process_tree(pid):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


@contextlib.contextmanager
def started(target: Target, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *target.command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{target.name} exited: {log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(target.ready_path, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.name} never became ready: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        # The whole session: MLServer's worker processes go with it. Signalled by the group's own id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def body_for(rows: np.ndarray[Any, Any]) -> bytes:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def check_answers(target: Target, bodies: dict[str, Path], expected: dict[str, list[int]]) -> None:
    for label, path in bodies.items():
        response = httpx.post(
            target.infer_path,
            content=path.read_bytes(),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        response.raise_for_status()
        data = response.json()["outputs"][0]["data"]
        if [int(value) for value in data] != expected[label]:
            raise AssertionError(
                f"{target.name} answered {data} for {label}, the model says {expected[label]}"
            )


def wrk(
    url: str,
    body: Path,
    concurrency: int,
    seconds: int,
    host: str | None = None,
    core: str | None = LOAD_CORE,
) -> dict[str, float]:
    """One wrk run (post.lua), pinned to `core` unless None, with a Host header when given; any non-2xx
    answer or socket error aborts the benchmark."""
    pinned = ["taskset", "-c", core] if core is not None else []
    headers = ["-H", f"Host: {host}"] if host else []
    result = subprocess.run(
        [
            *pinned,
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            *headers,
            "-s",
            str(HERE / "post.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        timeout=seconds + 60,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRK_RESULT "))
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    if raw["non_2xx"] or raw["socket_errors"]:
        raise AssertionError(f"{url}: {raw['non_2xx']} non-2xx answers, {raw['socket_errors']} socket errors")
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=3, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per case; the median is kept")
    parser.add_argument(
        "--only", default="kubeserve,kserve-quiet,kserve,mlserver,bare", help="comma-separated servers"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    only = set(args.only.split(","))

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    rng = np.random.default_rng(0)
    # The same benchmark environment for every server; OpenBLAS overrides slow a current numpy.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENBLAS_")}
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as scratch, contextlib.ExitStack() as stack:
        work = Path(scratch)
        model_dir = work / "iris"
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        bodies, expected = {}, {}
        for label, count in BODIES.items():
            rows = features[rng.choice(len(features), count, replace=False)]
            bodies[label] = work / f"body-{count}.json"
            bodies[label].write_bytes(body_for(rows))
            expected[label] = model.predict(rows).tolist()
        # All servers run at once, idle but for the one under load, and every case visits each in
        # turn, round after round: load from elsewhere on the machine then hits them all alike.
        servers = {}
        for target in targets(model_dir, work, only):
            process = stack.enter_context(started(target, work / f"{target.name}.log", env))
            check_answers(target, bodies, expected)
            servers[target.name] = (target, process)
            print(f"{target.name}: answers match model.predict", flush=True)
        measured: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in servers}
        for label, body in bodies.items():
            for concurrency in CONCURRENCIES:
                case = f"{label} c={concurrency}"
                for _ in range(args.rounds):
                    for name, (target, _process) in servers.items():
                        wrk(target.infer_path, body, concurrency, args.warmup)
                        measured[name].setdefault(case, []).append(
                            wrk(target.infer_path, body, concurrency, args.duration)
                        )
                print(
                    f"{case}: "
                    + ", ".join(
                        f"{name} {median(runs[case])['rps']:.0f} req/s" for name, runs in measured.items()
                    ),
                    flush=True,
                )
        results = {
            name: {
                "runs": {case: median(runs) for case, runs in cases.items()},
                "rss_mib": rss_mib(servers[name][1].pid),
            }
            for name, cases in measured.items()
        }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def report(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    keys = list(next(iter(results.values()))["runs"]) if results else []
    print("\nrequests/s, p50 / p99 latency in ms (server on core 0, wrk on core 1)")
    print(f"{'body, concurrency':<16}" + "".join(f"{name:>26}" for name in names))
    for key in keys:
        cells = []
        for name in names:
            run = results[name]["runs"][key]
            cells.append(f"{run['rps']:8.0f} {run['p50_ms']:6.2f}/{run['p99_ms']:6.2f}")
        print(f"{key:<16}" + "".join(f"{cell:>26}" for cell in cells))
    print(
        "\nresident memory after the run (MiB): "
        + ", ".join(f"{n} {results[n]['rss_mib']:.0f}" for n in names)
    )
    for baseline in ("kserve-quiet", "kserve", "bare"):
        if baseline in results and "kubeserve" in results:
            ours, theirs = results["kubeserve"]["runs"], results[baseline]["runs"]
            ratios = [f"{key}: {ours[key]['rps'] / theirs[key]['rps']:.2f}x" for key in keys]
            print(f"kubeserve / {baseline} throughput: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
