"""Compare Kubeserve's model server with KServe's, MLServer and a bare ASGI handler, in one run.

Every server serves the same scikit-learn model (trained here: logistic regression on iris, or with
`--model slow` a gradient-boosted model of about 5 ms per prediction), pinned to core 0, and is
driven by the same load generators pinned to core 1, on 127.0.0.1 only: wrk with post.lua (REST,
closed loop), ghz (gRPC ModelInfer, closed loop, one HTTP/2 connection as gRPC clients use) and
vegeta (REST, open loop at a fixed rate). Each server's answers are checked against
`model.predict`, over REST and gRPC, before it is timed.

Closed loop: for each protocol, body shape (nested FP64 lists or flat FP32), rows and concurrency,
requests per second and p50/p99 latency, the median of several rounds. Open loop: each server's
peak (wrk, right before, at the concurrency that served most in the closed loop), then a fixed
rate of 50% and 90% of it, with p50/p99/p99.9 and errors. Then the ratios to KServe (quiet, with
its per-request log lines off, and at its defaults) and to the bare handler, kubeserve's gRPC/REST
ratio, each server's resident memory and the cores its processes may run on.

By default the servers run all at once and every case visits them in turn, round after round, so
load from elsewhere on the machine falls on all alike; `--one-at-a-time` runs each server alone
(started, all its cases, stopped) as a harness of one server at a time would.

KServe and MLServer pin old dependencies, so each gets its own virtualenv under
~/.cache/kubeserve/bench-venvs (made on first use); ghz and vegeta are built by gotools.py. Not
part of `make test`:

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
import timeit
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
from google.protobuf import json_format
from gotools import tool
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from kubeserve.devcluster.ports import free_port
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROTO = REPO / "runtime-images" / "python" / "kubeserve_server" / "proto" / "grpc_predict_v2.proto"
INFER_METHOD = "inference.GRPCInferenceService/ModelInfer"
VENVS = Path.home() / ".cache" / "kubeserve" / "bench-venvs"
SERVER_CORE, LOAD_CORE = "0", "1"
CONCURRENCIES = (1, 8, 64)
ROWS = (1, 64)
# How the request tensor is written: KServe's and Triton's clients send nested FP64 lists from
# numpy's tolist(); the independent harness of issue 13 sent one flat FP32 list with its shape.
SHAPES = {"nested-fp64": "FP64", "flat-fp32": "FP32"}
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
    grpc_address: str | None = None  # host:port of its v2 gRPC service, if it is measured there
    env: dict[str, str] = field(default_factory=dict)  # on top of the benchmark's environment


@dataclass(frozen=True)
class Case:
    """One closed-loop measurement: protocol, body shape, rows per request, concurrency."""

    protocol: str
    shape: str
    rows: int
    concurrency: int

    @property
    def label(self) -> str:
        return f"{self.protocol} {self.shape} {self.rows} row{'s' * (self.rows > 1)} c={self.concurrency}"


@dataclass(frozen=True)
class Body:
    """The request for one shape and row count: a REST JSON file, a ghz JSON file, the answer."""

    rest: Path
    grpc: Path
    expected: list[int]


def kubeserve_target(name: str, model_name: str, model_dir: Path, env: dict[str, str]) -> Target:
    port, grpc_port = free_port(), free_port()
    return Target(
        name,
        [
            sys.executable,
            "-m",
            "kubeserve_server",
            f"--model_name={model_name}",
            f"--model_dir={model_dir}",
            "--host=127.0.0.1",
            f"--http_port={port}",
            f"--grpc_port={grpc_port}",
        ],
        f"http://127.0.0.1:{port}/v2/models/{model_name}/infer",
        f"http://127.0.0.1:{port}/v2/models/{model_name}/ready",
        grpc_address=f"127.0.0.1:{grpc_port}",
        env=env,
    )


def kubeserve_at(revision: str, work: Path) -> dict[str, str]:
    """The environment that runs kubeserve_server as committed at `revision` (from `git archive`,
    ahead of the installed one on PYTHONPATH), for a before/after in one run."""
    source = work / f"kubeserve-at-{revision}"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "runtime-images/python/kubeserve_server"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    return {"PYTHONPATH": str(source / "runtime-images" / "python")}


def targets(
    model_dir: Path, work: Path, only: list[str], model_name: str, before: str | None
) -> Iterator[Target]:
    model_file = model_dir / "model.joblib"
    if "kubeserve" in only:
        yield kubeserve_target("kubeserve", model_name, model_dir, {})
    if before:
        yield kubeserve_target(f"kubeserve@{before}", model_name, model_dir, kubeserve_at(before, work))
    for name, quiet in KSERVE_VARIANTS.items():
        if name not in only:
            continue
        port, grpc_port = free_port(), free_port()
        yield Target(
            name,
            [
                str(venv_python("kserve")),
                str(HERE / "servers" / "kserve_sklearn.py"),
                model_name,
                str(model_file),
                f"--http_port={port}",
                f"--grpc_port={grpc_port}",
                *quiet,
            ],
            f"http://127.0.0.1:{port}/v2/models/{model_name}/infer",
            f"http://127.0.0.1:{port}/v2/models/{model_name}/ready",
            grpc_address=f"127.0.0.1:{grpc_port}",
        )
    if "mlserver" in only:
        port = free_port()
        settings = work / "mlserver"
        (settings / model_name).mkdir(parents=True, exist_ok=True)
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
        (settings / model_name / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": model_name,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(model_file)},
                }
            )
        )
        python = venv_python("mlserver")
        yield Target(
            "mlserver",
            [str(python.parent / "mlserver"), "start", str(settings)],
            f"http://127.0.0.1:{port}/v2/models/{model_name}/infer",
            f"http://127.0.0.1:{port}/v2/models/{model_name}/ready",
        )
    if "bare" in only:
        port = free_port()
        yield Target(
            "bare",
            [sys.executable, str(HERE / "servers" / "bare_asgi.py"), str(model_file), str(port)],
            f"http://127.0.0.1:{port}/v2/models/{model_name}/infer",
            f"http://127.0.0.1:{port}/",
        )


def _process_tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
            pids.extend(int(child) for child in task.read_text().split())
        index += 1
    return pids


def _status_field(pid: int, key: str) -> str | None:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return line.split(":", 1)[1].strip()
    return None


def rss_mib(pid: int) -> float:
    """Resident memory of a server and all its child processes (MLServer runs a worker process)."""
    sizes = (_status_field(member, "VmRSS") for member in _process_tree(pid))
    return sum(int(size.split()[0]) for size in sizes if size) / 1024


def pinned_cores(pid: int) -> dict[str, str]:
    """Process name -> the cores it may run on (Cpus_allowed_list), for a server and its children:
    MLServer's inference worker is a child process, pinned by inheriting taskset's affinity."""
    cores = {}
    for member in _process_tree(pid):
        allowed = _status_field(member, "Cpus_allowed_list")
        if allowed is not None:
            cores[f"{_status_field(member, 'Name')}[{member}]"] = allowed
    return cores


@contextlib.contextmanager
def started(target: Target, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *target.command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**env, **target.env},
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


def body_for(rows: np.ndarray[Any, Any], shape: str = "nested-fp64") -> bytes:
    """A v2 REST request: the rows as nested lists (FP64), or as one flat list (FP32)."""
    data = rows.tolist() if shape == "nested-fp64" else rows.ravel().tolist()
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": SHAPES[shape], "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def grpc_request_for(rows: np.ndarray[Any, Any], shape: str, model_name: str) -> dict[str, Any]:
    """The same request for gRPC ModelInfer in protobuf's JSON form, with typed contents."""
    datatype = SHAPES[shape]
    return {
        "model_name": model_name,
        "inputs": [
            {
                "name": "input-0",
                "datatype": datatype,
                "shape": list(rows.shape),
                "contents": {f"{datatype.lower()}_contents": rows.ravel().tolist()},
            }
        ],
    }


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


def check_grpc_answers(target: Target, bodies: dict[str, Body]) -> None:
    """Each gRPC request's answer against the model's, whether the server sends typed or raw contents."""
    assert target.grpc_address is not None
    with grpc.insecure_channel(target.grpc_address) as channel:
        infer = channel.unary_unary(
            f"/{INFER_METHOD}",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for label, body in bodies.items():
            request = pb.ModelInferRequest()
            json_format.Parse(body.grpc.read_text(), request)
            response = infer(request, timeout=10)
            output = response.outputs[0]
            if response.raw_output_contents:
                data = np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist()
            else:
                data = list(output.contents.int64_contents or output.contents.int_contents)
            if data != body.expected:
                raise AssertionError(
                    f"{target.name} answered {data} over gRPC for {label}, the model says {body.expected}"
                )


def check_all_answers(target: Target, bodies: dict[tuple[str, int], Body], grpc_too: bool) -> None:
    """Every body's answer over REST, and over gRPC where the server is measured there."""
    labelled = {f"{shape} {rows}": body for (shape, rows), body in bodies.items()}
    check_answers(
        target,
        {label: body.rest for label, body in labelled.items()},
        {label: body.expected for label, body in labelled.items()},
    )
    if grpc_too and target.grpc_address:
        check_grpc_answers(target, labelled)
    print(f"{target.name}: answers match model.predict", flush=True)


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


def ghz(address: str, request: Path, concurrency: int, seconds: int) -> dict[str, float]:
    """One ghz run of ModelInfer over one connection, pinned to the load core, waiting for the calls
    in flight when the time is up; any error answer aborts the benchmark."""
    result = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            str(tool("ghz")),
            "--insecure",
            "--cpus=1",
            f"--proto={PROTO}",
            f"--call={INFER_METHOD}",
            f"--data-file={request}",
            f"--concurrency={concurrency}",
            f"--duration={seconds}s",
            "--duration-stop=wait",
            "--total=0",
            "--timeout=10s",
            "--format=json",
            address,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    report = json.loads(result.stdout)
    if report.get("errorDistribution"):
        raise AssertionError(f"{address}: gRPC errors {report['errorDistribution']}")
    latency = {entry["percentage"]: entry["latency"] for entry in report["latencyDistribution"]}
    return {"rps": report["rps"], "p50_ms": latency[50] / 1e6, "p99_ms": latency[99] / 1e6}


def vegeta(url: str, body: Path, rate: int, seconds: int, work: Path) -> dict[str, float]:
    """One open-loop run: `rate` requests/s for `seconds`, sent on schedule whatever the answers'
    latency (vegeta, pinned to the load core). Errors are counted, not fatal: an overloaded server
    is what this measures."""
    targets_file, results_file = work / "vegeta-targets.txt", work / "vegeta-results.bin"
    targets_file.write_text(f"POST {url}\nContent-Type: application/json\n@{body}\n")
    subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            str(tool("vegeta")),
            "attack",
            f"-targets={targets_file}",
            f"-rate={rate}/1s",
            f"-duration={seconds}s",
            "-timeout=10s",
            f"-output={results_file}",
        ],
        check=True,
        timeout=seconds + 60,
    )
    encoded = subprocess.run(
        [str(tool("vegeta")), "encode", "--to=json", str(results_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    hits = [json.loads(line) for line in encoded.stdout.splitlines()]
    latencies_ms = np.array([hit["latency"] for hit in hits]) / 1e6
    errors = sum(1 for hit in hits if hit["error"] or not 200 <= hit["code"] < 300)
    p50, p99, p999 = np.percentile(latencies_ms, [50, 99, 99.9])
    return {
        "rate": float(rate),
        "sent": float(len(hits)),
        "errors": float(errors),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "p99.9_ms": float(p999),
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def train(model: str) -> tuple[Any, np.ndarray[Any, Any], str]:
    """The fitted model, rows to send it, and the name it is served under."""
    if model == "iris":
        features, labels = load_iris(return_X_y=True)
        return LogisticRegression(max_iter=1000).fit(features, labels), features, "iris"
    # About 5 ms per one-row predict on the development machine: 100 rounds of 3 trees (3 classes).
    features, labels = make_classification(
        n_samples=4000, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    fitted = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    return fitted.fit(features, labels), features, "slow"


@dataclass
class Plan:
    """What one run measures, from the command line."""

    cases: list[Case]
    rounds: int
    warmup: int
    duration: int
    open_loop: list[int]  # percentages of the peak
    open_body: tuple[str, int]  # shape, rows
    work: Path


def measure(target: Target, case: Case, body: Body, seconds: int) -> dict[str, float]:
    if case.protocol == "grpc":
        assert target.grpc_address is not None
        return ghz(target.grpc_address, body.grpc, case.concurrency, seconds)
    return wrk(target.infer_path, body.rest, case.concurrency, seconds)


def serves(target: Target, case: Case) -> bool:
    return case.protocol == "rest" or target.grpc_address is not None


def open_loop(
    servers: dict[str, tuple[Target, subprocess.Popen[bytes]]],
    plan: Plan,
    body: Body,
    open_cases: list[Case],
    closed: dict[str, dict[str, Any]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per server and round: its peak now (wrk at the concurrency that served most in the closed
    loop), then vegeta at each percentage of it. The peak is measured right before, not taken from
    the closed loop minutes earlier: on a shared machine a server's capacity drifts, and a rate
    above what it can serve now measures the backlog, not the tail."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in servers}
    for _ in range(plan.rounds):
        for name, (target, _process) in servers.items():
            best = max(open_cases, key=lambda case: closed[name]["runs"][case.label]["rps"])
            peak = wrk(target.infer_path, body.rest, best.concurrency, plan.duration)["rps"]
            for percent in plan.open_loop:
                rate = max(1, round(peak * percent / 100))
                vegeta(target.infer_path, body.rest, rate, plan.warmup, plan.work)
                run = vegeta(target.infer_path, body.rest, rate, plan.duration, plan.work)
                runs[name].setdefault(f"{percent}%", []).append({"peak": peak, **run})
    print("open loop: done", flush=True)
    summaries: dict[str, dict[str, dict[str, float]]] = {name: {} for name in servers}
    for name, by_percent in runs.items():
        for percent, measured in by_percent.items():
            summary = median(measured)
            summary["errors"] = sum(run["errors"] for run in measured)
            summaries[name][percent] = summary
    return summaries


def run_servers(
    servers: dict[str, tuple[Target, subprocess.Popen[bytes]]],
    plan: Plan,
    bodies: dict[tuple[str, int], Body],
) -> dict[str, dict[str, Any]]:
    """Every case, then the open-loop rates, visiting the running servers in turn each round."""
    closed: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in servers}
    for case in plan.cases:
        body = bodies[case.shape, case.rows]
        for _ in range(plan.rounds):
            for name, (target, _process) in servers.items():
                if serves(target, case):
                    measure(target, case, body, plan.warmup)
                    closed[name].setdefault(case.label, []).append(measure(target, case, body, plan.duration))
        print(
            f"{case.label}: "
            + ", ".join(
                f"{name} {median(runs[case.label])['rps']:.0f} req/s"
                for name, runs in closed.items()
                if case.label in runs
            ),
            flush=True,
        )
    results = {
        name: {"runs": {label: median(runs) for label, runs in cases.items()}}
        for name, cases in closed.items()
    }
    open_cases = [
        case
        for case in plan.cases
        if case.protocol == "rest" and (case.shape, case.rows) == plan.open_body and plan.open_loop
    ]
    if open_cases:
        for name, runs in open_loop(servers, plan, bodies[plan.open_body], open_cases, results).items():
            results[name]["open_loop"] = runs
    for name, (_target, process) in servers.items():
        results[name]["rss_mib"] = rss_mib(process.pid)
        results[name]["cores"] = pinned_cores(process.pid)
        if set(results[name]["cores"].values()) != {SERVER_CORE}:
            raise AssertionError(f"{name} runs outside core {SERVER_CORE}: {results[name]['cores']}")
    return results


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
    parser.add_argument("--model", choices=("iris", "slow"), default="iris")
    parser.add_argument("--protocols", default="rest,grpc", help="rest, grpc (kubeserve and KServe only)")
    parser.add_argument("--shapes", default="nested-fp64", help=f"body shapes: {', '.join(SHAPES)}")
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="rows per request")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)))
    parser.add_argument(
        "--open-loop", default="50,90", help="percentages of each server's peak to send at ('' for none)"
    )
    parser.add_argument("--one-at-a-time", action="store_true", help="run each server alone in turn")
    parser.add_argument(
        "--kubeserve-at", metavar="REVISION", help="also run kubeserve_server as committed at REVISION"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    only = args.only.split(",")
    shapes = args.shapes.split(",")
    if unknown := set(shapes) - set(SHAPES):
        sys.exit(f"--shapes: unknown {', '.join(sorted(unknown))}; expected {', '.join(SHAPES)}")
    rows_options = [int(value) for value in args.rows.split(",")]
    cases = [
        Case(protocol, shape, rows, int(concurrency))
        for protocol in args.protocols.split(",")
        for shape in shapes
        for rows in rows_options
        for concurrency in args.concurrency.split(",")
    ]
    for name in ("ghz", "vegeta"):
        tool(name)  # built before any timing starts

    model, features, model_name = train(args.model)
    single = features[:1]
    # One thread, as in a server pinned to one core (OpenMP sizes its pool by the affinity).
    with threadpool_limits(1):
        per_call = min(timeit.repeat(lambda: model.predict(single), number=20, repeat=3)) / 20
    print(f"{args.model} model: predict on one row takes {per_call * 1000:.2f} ms (timeit, best of 3)")
    rng = np.random.default_rng(0)
    # The same benchmark environment for every server; OpenBLAS overrides slow a current numpy.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENBLAS_")}
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as scratch:
        work = Path(scratch)
        model_dir = work / "model"
        model_dir.mkdir()
        joblib.dump(model, model_dir / "model.joblib")
        bodies: dict[tuple[str, int], Body] = {}
        for rows in rows_options:
            chosen = features[rng.choice(len(features), rows, replace=False)]
            for shape in shapes:
                stem = work / f"body-{shape}-{rows}"
                rest, grpc_file = stem.with_suffix(".json"), stem.with_suffix(".grpc.json")
                rest.write_bytes(body_for(chosen, shape))
                grpc_file.write_text(json.dumps(grpc_request_for(chosen, shape, model_name)))
                as_sent = chosen.astype(np.float32) if SHAPES[shape] == "FP32" else chosen
                bodies[shape, rows] = Body(rest, grpc_file, model.predict(as_sent).tolist())
        plan = Plan(
            cases,
            args.rounds,
            args.warmup,
            args.duration,
            [int(p) for p in args.open_loop.split(",") if p],
            (shapes[0], rows_options[0]),
            work,
        )
        all_targets = list(targets(model_dir, work, only, model_name, args.kubeserve_at))
        groups = [[target] for target in all_targets] if args.one_at_a_time else [all_targets]
        results: dict[str, dict[str, Any]] = {}
        for group in groups:
            with contextlib.ExitStack() as stack:
                servers = {}
                for target in group:
                    process = stack.enter_context(started(target, work / f"{target.name}.log", env))
                    check_all_answers(target, bodies, "grpc" in args.protocols)
                    servers[target.name] = (target, process)
                results.update(run_servers(servers, plan, bodies))
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    labels = list(dict.fromkeys(label for result in results.values() for label in result["runs"]))
    print("\nrequests/s, p50 / p99 latency in ms (server on core 0, load generator on core 1)")
    width = max(len(label) for label in labels) + 2 if labels else 20
    print(f"{'case':<{width}}" + "".join(f"{name:>26}" for name in names))
    for label in labels:
        cells = []
        for name in names:
            run = results[name]["runs"].get(label)
            cells.append(f"{run['rps']:8.0f} {run['p50_ms']:6.2f}/{run['p99_ms']:6.2f}" if run else "-")
        print(f"{label:<{width}}" + "".join(f"{cell:>26}" for cell in cells))
    percents = list(dict.fromkeys(p for result in results.values() for p in result.get("open_loop", {})))
    if percents:
        print("\nopen loop (vegeta): peak req/s (wrk, just before), rate req/s, p50 / p99 / p99.9 ms, errors")
        for percent in percents:
            for name in names:
                run = results[name]["open_loop"][percent]
                latency = f"{run['p50_ms']:7.2f} / {run['p99_ms']:7.2f} / {run['p99.9_ms']:7.2f}"
                rates = f"{run['peak']:6.0f} {run['rate']:6.0f}"
                print(f"  {percent:>4} of peak  {name:<18} {rates}  {latency}  {run['errors']:.0f}")
    print(
        "\nresident memory after the run (MiB): "
        + ", ".join(f"{n} {results[n]['rss_mib']:.0f}" for n in names)
    )
    for name in names:
        print(f"cores allowed, {name}: " + ", ".join(f"{p} {c}" for p, c in results[name]["cores"].items()))
    ours_name = "kubeserve"
    if ours_name not in results:
        return
    ours = results[ours_name]["runs"]
    for baseline in [name for name in names if name != ours_name]:
        theirs = results[baseline]["runs"]
        ratios = [
            f"{label}: {ours[label]['rps'] / theirs[label]['rps']:.2f}x"
            for label in labels
            if label in theirs
        ]
        print(f"kubeserve / {baseline} throughput: " + ", ".join(ratios))
    grpc_over_rest = []
    for label in labels:
        rest = "rest" + label.removeprefix("grpc")
        if label.startswith("grpc ") and label in ours and rest in ours:
            grpc_over_rest.append(
                f"{label.removeprefix('grpc ')}: {ours[label]['rps'] / ours[rest]['rps']:.2f}x"
            )
    if grpc_over_rest:
        print("kubeserve gRPC / REST throughput: " + ", ".join(grpc_over_rest))


if __name__ == "__main__":
    main()
