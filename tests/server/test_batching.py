"""Adaptive batching (`--max_batch_size`, `--max_batch_latency_ms`) over real REST v1, v2 and gRPC:
each client gets exactly `model.predict` of its own rows, while `kubeserve_batch_size` shows that
the requests really shared model calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Server, Trained, running_server


def batch_histogram(server: Server) -> dict[str, float]:
    """`kubeserve_batch_size`'s samples: count, sum and the cumulative bucket counts by `le`."""
    result: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        for sample in family.samples:
            if sample.name == "kubeserve_batch_size_bucket":
                result[sample.labels["le"]] = sample.value
            elif sample.name in ("kubeserve_batch_size_count", "kubeserve_batch_size_sum"):
                result[sample.name.rsplit("_", 1)[1]] = sample.value
    return result


def together(sends: list[Callable[[], Any]]) -> list[Any]:
    """Every send at once, from its own thread, released by one barrier; results in order."""
    barrier = threading.Barrier(len(sends))

    def one(send: Callable[[], Any]) -> Any:
        barrier.wait()
        return send()

    with ThreadPoolExecutor(len(sends)) as pool:
        return list(pool.map(one, sends))


def grpc_request(rows: np.ndarray[Any, Any]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    return request


def test_concurrent_clients_share_model_calls_and_get_their_own_rows(
    tmp_path: Path, sklearn_iris: Trained
) -> None:
    features, model = sklearn_iris.features, sklearn_iris.model
    # Clients of 1 to 3 rows each, over v1, v2 and gRPC, and one whose rows (a NaN) the model refuses.
    slices = [features[start : start + 1 + index % 3] for index, start in enumerate(range(0, 150, 10))]
    nan_rows = np.array([[5.0, np.nan, 1.0, 0.2]])
    args = ["--max_batch_size=32", "--max_batch_latency_ms=300"]
    with (
        running_server(tmp_path, sklearn_iris.model_dir, "sklearn", *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
        grpc.insecure_channel(server.grpc_target) as channel,
    ):
        client = GrpcClient(channel)

        def send(index: int, rows: np.ndarray[Any, Any]) -> Callable[[], Any]:
            if index % 3 == 0:
                return lambda: http.post("/v1/models/iris:predict", json={"instances": rows.tolist()}).json()[
                    "predictions"
                ]
            if index % 3 == 1:
                body = {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": list(rows.shape),
                            "datatype": "FP64",
                            "data": rows.tolist(),
                        }
                    ]
                }
                return lambda: http.post("/v2/models/iris/infer", json=body).json()["outputs"][0]["data"]
            return lambda: list(client.infer(grpc_request(rows)).outputs[0].contents.int64_contents)

        def refused() -> Any:
            try:
                client.infer(grpc_request(nan_rows))
            except grpc.RpcError as error:
                return error
            raise AssertionError("a NaN row was predicted on")

        def bad_json() -> httpx.Response:
            return http.post("/v2/models/iris/infer", content=b'{"inputs": [')

        answers = together([send(index, rows) for index, rows in enumerate(slices)] + [refused, bad_json])
        histogram = batch_histogram(server)
    for rows, answer in zip(slices, answers, strict=False):
        assert answer == model.predict(rows).tolist()
    nan_error, bad_json_answer = answers[-2:]
    assert nan_error.code() == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in nan_error.details()
    assert bad_json_answer.status_code == 400
    model_rows = sum(len(rows) for rows in slices) + 1
    # Every row went through a batch (the NaN row's too); the 16 requests took fewer model calls.
    assert histogram["sum"] == model_rows
    assert histogram["count"] < len(slices) + 1, histogram


# With a deadline, batches run in threads, and each request holds one of the slots until its batch ends.
@pytest.mark.parametrize("limits", [[], ["--request_timeout=10", "--container_concurrency=12"]])
def test_a_batch_is_sent_when_full_and_never_holds_more_than_the_size(
    tmp_path: Path, sklearn_iris: Trained, limits: list[str]
) -> None:
    """Twelve one-row clients, size 4 and a long latency: three full batches, none waiting for the latency."""
    features, model = sklearn_iris.features, sklearn_iris.model
    args = ["--max_batch_size=4", "--max_batch_latency_ms=3000", *limits]
    with (
        running_server(tmp_path, sklearn_iris.model_dir, "sklearn", *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        started = time.monotonic()
        answers = together(
            [
                lambda row=row: http.post("/v1/models/iris:predict", json={"instances": [row.tolist()]})
                for row in features[:12]
            ]
        )
        elapsed = time.monotonic() - started
        histogram = batch_histogram(server)
    assert [answer.json()["predictions"] for answer in answers] == [
        [label] for label in model.predict(features[:12])
    ]
    assert elapsed < 2.5, elapsed
    assert histogram["count"] == 3 and histogram["4.0"] == 3 and histogram["2.0"] == 0, histogram


def test_a_lone_request_waits_for_the_latency_then_goes_alone(tmp_path: Path, sklearn_iris: Trained) -> None:
    args = ["--max_batch_size=32", "--max_batch_latency_ms=400"]
    with (
        running_server(tmp_path, sklearn_iris.model_dir, "sklearn", *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        rows = sklearn_iris.features[:2]
        started = time.monotonic()
        answer = http.post("/v1/models/iris:predict", json={"instances": rows.tolist()})
        elapsed = time.monotonic() - started
        # A request of more rows than the size goes at once, alone.
        started = time.monotonic()
        big = http.post("/v1/models/iris:predict", json={"instances": sklearn_iris.features[:40].tolist()})
        big_elapsed = time.monotonic() - started
        histogram = batch_histogram(server)
    assert answer.json()["predictions"] == sklearn_iris.model.predict(rows).tolist()
    assert big.json()["predictions"] == sklearn_iris.model.predict(sklearn_iris.features[:40]).tolist()
    assert 0.4 <= elapsed < 2.0, elapsed
    assert big_elapsed < 0.4, big_elapsed
    assert (histogram["count"], histogram["sum"], histogram["32.0"]) == (2, 42, 1)
