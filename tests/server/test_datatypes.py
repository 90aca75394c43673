"""Every v2 datatype, every shape kind, over REST and gRPC (typed and raw), through a real model.

The model is an ONNX graph with one Identity per datatype, so what comes back must be exactly
what went in: a lossy or mistyped decode or encode anywhere shows up as a difference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper

from kubeserve_server.grpc_v2 import CONTENTS_FIELDS
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from kubeserve_server.protocol import DTYPES, tensor_from_raw, tensor_to_raw
from tests.server.conftest import GrpcClient, Server, running_server

ELEMENT_TYPES = {
    "BOOL": TensorProto.BOOL,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
# Extremes of each type, so range and precision are both exercised; 2x3 of each.
SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True, False, False],
    "INT8": [-128, 127, 0, -1, 1, 5],
    "INT16": [-32768, 32767, 0, -1, 1, 300],
    "INT32": [-(2**31), 2**31 - 1, 0, -1, 1, 70000],
    "INT64": [-(2**63), 2**63 - 1, 0, -1, 1, 2**40],
    "UINT8": [0, 255, 1, 2, 3, 4],
    "UINT16": [0, 65535, 1, 2, 3, 4],
    "UINT32": [0, 2**32 - 1, 1, 2, 3, 4],
    "UINT64": [0, 2**64 - 1, 1, 2, 3, 2**63],
    "FP16": [0.5, -2.0, 65504.0, 0.0, 1.5, -0.25],
    "FP32": [0.1, -3.5, 3.4e38, 1e-30, 0.0, 2.0],
    "FP64": [0.1, -3.5, 1.7e308, 5e-324, 0.0, 2.0],
    "BYTES": ["a", "", "héllo", "x y", "nul\x00", "long " * 10],
}


@contextlib.contextmanager
def _identity_server(base: Path, datatypes: list[str]) -> Iterator[Server]:
    """An ONNX identity model with one input and one output per datatype, and its server."""
    inputs = [helper.make_tensor_value_info(f"in_{t}", ELEMENT_TYPES[t], ["rows", "cols"]) for t in datatypes]
    outputs = [
        helper.make_tensor_value_info(f"out_{t}", ELEMENT_TYPES[t], ["rows", "cols"]) for t in datatypes
    ]
    nodes = [helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in datatypes]
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    model_dir = base / "echo"
    model_dir.mkdir()
    onnx.save(model, model_dir / "model.onnx")
    with running_server(base, model_dir, "onnx", "--model_version=3") as server:
        yield server


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _identity_server(tmp_path_factory.mktemp("all-types"), list(SAMPLES)) as server:
        yield server


@pytest.fixture(scope="module")
def typed_identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Without FP16: gRPC's typed contents have no field for it, only raw contents carry it."""
    with _identity_server(
        tmp_path_factory.mktemp("typed-types"), [t for t in SAMPLES if t != "FP16"]
    ) as server:
        yield server


def _nested(values: list[Any]) -> list[list[Any]]:
    return [values[:3], values[3:]]


def test_metadata_lists_every_datatype(identity_server: Server) -> None:
    metadata = httpx.get(f"{identity_server.url}/v2/models/echo/versions/3").json()
    assert metadata["versions"] == ["3"]
    assert {(i["name"], i["datatype"]) for i in metadata["inputs"]} == {(f"in_{t}", t) for t in ELEMENT_TYPES}
    assert all(i["shape"] == [-1, -1] for i in metadata["inputs"])


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_rest_round_trips_every_datatype(identity_server: Server, nested: bool) -> None:
    body = {
        "id": "all-types",
        "inputs": [
            {"name": f"in_{t}", "datatype": t, "shape": [2, 3], "data": _nested(v) if nested else v}
            for t, v in SAMPLES.items()
        ],
    }
    response = httpx.post(f"{identity_server.url}/v2/models/echo/versions/3/infer", json=body)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["model_version"] == "3" and document["id"] == "all-types"
    outputs = {o["name"]: o for o in document["outputs"]}
    for datatype, values in SAMPLES.items():
        output = outputs[f"out_{datatype}"]
        assert (output["datatype"], output["shape"]) == (datatype, [2, 3])
        if datatype.startswith("FP"):
            precision = DTYPES[datatype]
            np.testing.assert_array_equal(
                np.asarray(output["data"]).astype(precision), np.asarray(values).astype(precision)
            )
        else:
            assert output["data"] == values, datatype


def test_rest_binary_data_round_trips_every_datatype(identity_server: Server) -> None:
    """The binary tensor data extension: raw inputs after a JSON header, raw outputs back."""
    header: dict[str, Any] = {"inputs": [], "outputs": [], "parameters": {"binary_data_output": True}}
    raw_parts = []
    for datatype, values in SAMPLES.items():
        array = (
            np.empty(6, dtype=object) if datatype == "BYTES" else np.asarray(values, dtype=DTYPES[datatype])
        )
        if datatype == "BYTES":
            array[:] = [value.encode() for value in values]
        raw = tensor_to_raw(array, datatype)
        raw_parts.append(raw)
        tensor = {"name": f"in_{datatype}", "datatype": datatype, "shape": [2, 3]}
        header["inputs"].append({**tensor, "parameters": {"binary_data_size": len(raw)}})
    # One output as JSON, overriding the request-wide binary_data_output.
    header["outputs"] = [{"name": f"out_{t}"} for t in SAMPLES if t != "INT8"]
    header["outputs"].append({"name": "out_INT8", "parameters": {"binary_data": False}})
    json_part = orjson.dumps(header)
    response = httpx.post(
        f"{identity_server.url}/v2/models/echo/infer",
        content=json_part + b"".join(raw_parts),
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(json_part)),
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers["inference-header-content-length"])
    document = orjson.loads(response.content[:header_length])
    offset = header_length
    for output in document["outputs"]:
        datatype = output["datatype"]
        if datatype == "INT8":
            assert output["data"] == SAMPLES["INT8"] and "parameters" not in output
            continue
        size = output["parameters"]["binary_data_size"]
        decoded = tensor_from_raw(response.content[offset : offset + size], datatype, output["shape"], "out")
        offset += size
        expected = [v.encode() for v in SAMPLES[datatype]] if datatype == "BYTES" else SAMPLES[datatype]
        np.testing.assert_array_equal(decoded.ravel(), np.asarray(expected, dtype=DTYPES[datatype]))
    assert offset == len(response.content)


def test_rest_shapes_are_checked_against_the_model(identity_server: Server) -> None:
    url = f"{identity_server.url}/v2/models/echo/infer"

    def tensors(shape: list[int], count: int) -> list[dict[str, Any]]:
        return [
            {"name": f"in_{t}", "datatype": t, "shape": shape, "data": v[:count]} for t, v in SAMPLES.items()
        ]

    lonely = httpx.post(url, json={"inputs": tensors([1, 1], 1)[3:4]})
    assert lonely.status_code == 400 and "takes 13 input(s)" in lonely.json()["error"]
    response = httpx.post(url, json={"inputs": tensors([2, 2, 1], 4)})
    assert response.status_code == 400
    assert "has shape [2, 2, 1], model expects [-1, -1]" in response.json()["error"]
    empty = tensors([0, 4], 0)
    response = httpx.post(
        url, json={"inputs": empty, "outputs": [{"name": "out_INT32"}, {"name": "out_BYTES"}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [
        {"name": "out_INT32", "datatype": "INT32", "shape": [0, 4], "data": []},
        {"name": "out_BYTES", "datatype": "BYTES", "shape": [0, 4], "data": []},
    ]


def _grpc_request(raw: bool) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="echo", model_version="3")
    for datatype, values in SAMPLES.items():
        if datatype == "FP16" and not raw:
            continue
        tensor = request.inputs.add(name=f"in_{datatype}", datatype=datatype, shape=[2, 3])
        if raw and datatype == "BYTES":
            encoded = [value.encode() for value in values]
            request.raw_input_contents.append(b"".join(len(e).to_bytes(4, "little") + e for e in encoded))
        elif raw:
            request.raw_input_contents.append(np.asarray(values, dtype=_little_endian(datatype)).tobytes())
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(value.encode() for value in values)
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(values)
    return request


def _little_endian(datatype: str) -> np.dtype[Any]:
    return DTYPES[datatype].newbyteorder("<")


def test_grpc_raw_contents_round_trip_every_datatype(identity_server: Server) -> None:
    with grpc.insecure_channel(identity_server.grpc_target) as channel:
        response = GrpcClient(channel).infer(_grpc_request(raw=True))
    assert response.model_version == "3" and len(response.raw_output_contents) == len(SAMPLES)
    for output, payload in zip(response.outputs, response.raw_output_contents, strict=True):
        datatype = output.name.removeprefix("out_")
        assert (output.datatype, list(output.shape)) == (datatype, [2, 3])
        if datatype == "BYTES":
            items, offset = [], 0
            while offset < len(payload):
                length = int.from_bytes(payload[offset : offset + 4], "little")
                items.append(payload[offset + 4 : offset + 4 + length].decode())
                offset += 4 + length
            assert items == SAMPLES[datatype]
        else:
            expected = np.asarray(SAMPLES[datatype], dtype=_little_endian(datatype))
            np.testing.assert_array_equal(np.frombuffer(payload, dtype=_little_endian(datatype)), expected)


def test_grpc_typed_contents_round_trip_every_typed_datatype(typed_identity_server: Server) -> None:
    with grpc.insecure_channel(typed_identity_server.grpc_target) as channel:
        response = GrpcClient(channel).infer(_grpc_request(raw=False))
    assert not response.raw_output_contents and len(response.outputs) == len(SAMPLES) - 1
    for output in response.outputs:
        datatype = output.name.removeprefix("out_")
        values = list(getattr(output.contents, CONTENTS_FIELDS[datatype]))
        if datatype == "BYTES":
            assert [v.decode() for v in values] == SAMPLES[datatype]
        elif datatype == "FP32":
            np.testing.assert_array_equal(np.float32(values), np.float32(SAMPLES[datatype]))
        else:
            assert values == SAMPLES[datatype], datatype
