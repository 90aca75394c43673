"""Bad input gets a JSON error naming what is wrong (400/404/405/413), and the server stays up."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import Server

GOOD_TENSOR = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}


def tensor(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{**GOOD_TENSOR, **changes}]}


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/iris/infer", tensor(shape=[1, 3]), 400, "has 4 elements but shape [1, 3] needs 3"),
        ("/v2/models/iris/infer", tensor(shape=[2, 2]), 400, "has shape [2, 2], model expects [-1, 4]"),
        ("/v2/models/iris/infer", tensor(shape=[4]), 400, "has shape [4], model expects [-1, 4]"),
        (
            "/v2/models/iris/infer",
            tensor(shape=[1, -4]),
            400,
            "inputs[0].shape must be a list of non-negative",
        ),
        ("/v2/models/iris/infer", tensor(datatype="FP99"), 400, "unknown datatype 'FP99'"),
        ("/v2/models/iris/infer", tensor(datatype="INT8"), 400, "inputs[0].data does not hold INT8 values"),
        ("/v2/models/iris/infer", tensor(datatype="BOOL"), 400, "does not hold BOOL values"),
        ("/v2/models/iris/infer", tensor(data=["a", "b", "c", "d"]), 400, "does not hold FP64 values"),
        ("/v2/models/iris/infer", tensor(datatype="BYTES", data=["a"] * 4), 400, "model expects FP64"),
        (
            "/v2/models/iris/infer",
            tensor(datatype="INT8", data=[1, 2, 3, 300]),
            400,
            "outside the range of INT8",
        ),
        ("/v2/models/iris/infer", tensor(data=[[1, 2], [3]]), 400, "not a regular array"),
        ("/v2/models/iris/infer", tensor(name=3), 400, "inputs[0].name must be a string"),
        ("/v2/models/iris/infer", tensor(parameters={"a": [1]}), 400, "inputs[0].parameters.a must be"),
        ("/v2/models/iris/infer", {"inputs": []}, 400, "body.inputs must be a non-empty list"),
        (
            "/v2/models/iris/infer",
            {"inputs": [GOOD_TENSOR], "outputs": [{"name": "x"}]},
            400,
            "no output 'x'",
        ),
        ("/v2/models/iris/infer", {"inputs": [GOOD_TENSOR], "id": 5}, 400, "body.id must be a string"),
        ("/v2/models/iris/infer", [GOOD_TENSOR], 400, "body must be a JSON object"),
        ("/v2/models/rose/infer", tensor(), 404, "model 'rose' not found; this server serves 'iris'"),
        ("/v2/models/iris/versions/7/infer", tensor(), 404, "model 'iris' has no version '7'"),
        ("/v2/models/rose", None, 404, "model 'rose' not found"),
        ("/v2/models/rose/ready", None, 404, "model 'rose' not found"),
        ("/v2/nowhere", None, 404, "no route for /v2/nowhere"),
    ],
)
def test_refused_with_a_reason(http: httpx.Client, path: str, body: Any, status: int, fragment: str) -> None:
    response = http.request("GET" if body is None else "POST", path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"]


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xff\xfe", b'{"inputs": NaN}'])
def test_body_that_is_not_json(http: httpx.Client, body: bytes) -> None:
    for path in ("/v2/models/iris/infer", "/v1/models/iris:predict"):
        response = http.post(path, content=body)
        assert response.status_code == 400
        assert response.json()["error"].startswith("body is not valid JSON")


def test_wrong_method(http: httpx.Client) -> None:
    response = http.get("/v2/models/iris/infer")
    assert response.status_code == 405 and "use POST" in response.json()["error"]


def test_body_over_the_limit_is_refused_before_it_is_read(http: httpx.Client) -> None:
    big = tensor(shape=[20_000, 4], data=[0.5] * 80_000)
    response = http.post("/v2/models/iris/infer", json=big)
    assert response.status_code == 413
    assert "over the limit of 200000 bytes" in response.json()["error"]


def test_chunked_body_over_the_limit(iris_server: Server) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 10_000

    with httpx.Client(base_url=iris_server.url) as client:
        response = client.post("/v2/models/iris/infer", content=chunks())
    assert response.status_code == 413


def test_server_still_serves_after_bad_input(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").status_code == 200
    assert http.post("/v2/models/iris/infer", json=tensor()).status_code == 200


@pytest.mark.parametrize(
    ("header_length", "tail", "size", "fragment"),
    [
        (10_000, b"", 32, "Inference-Header-Content-Length is 10000 but the body is"),
        (None, b"\0" * 32, 31, "raw data is 31 bytes, shape [1, 4] of FP64 needs 32"),
        (None, b"\0" * 32, 64, "binary_data_size is 64, but 32 bytes of binary data are left"),
        (None, b"\0" * 40, 32, "8 bytes of binary data after the header belong to no input"),
        ("x", b"\0" * 32, 32, "header inference-header-content-length must be an integer"),
    ],
)
def test_bad_binary_data(
    http: httpx.Client, header_length: Any, tail: bytes, size: int, fragment: str
) -> None:
    header = orjson.dumps(tensor(parameters={"binary_data_size": size}))
    response = http.post(
        "/v2/models/iris/infer",
        content=header + tail,
        headers={
            "inference-header-content-length": str(len(header) if header_length is None else header_length)
        },
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]
