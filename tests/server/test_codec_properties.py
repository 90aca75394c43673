"""Property tests of the wire codecs: any tensor of any datatype survives encode -> decode unchanged.

These run in-process (no server), so hypothesis can try many shapes and values cheaply; the
server tests check the same paths end to end on fixed examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kubeserve_server import grpc_v2, v2_json
from kubeserve_server.protocol import DTYPES, InferOutput, InferResponse

NUMERIC = [name for name in DTYPES if name != "BYTES"]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, np.ndarray[Any, Any]]:
    datatype = draw(st.sampled_from([*NUMERIC, "BYTES"]))
    shape = draw(shapes)
    if datatype == "BYTES":
        count = int(np.prod(shape))
        items = draw(st.lists(st.text(max_size=8), min_size=count, max_size=count))
        array = np.empty(count, dtype=object)
        array[:] = [item.encode() for item in items]
        return datatype, array.reshape(shape)
    elements = hnp.from_dtype(DTYPES[datatype], allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return datatype, draw(hnp.arrays(DTYPES[datatype], shape, elements=elements))


@settings(max_examples=300, deadline=None)
@given(tensors())
def test_json_round_trip(tensor: tuple[str, np.ndarray[Any, Any]]) -> None:
    datatype, array = tensor
    body, header_length = v2_json.encode_infer_response(InferResponse("m", [InferOutput("t", array)]))
    assert header_length is None
    [output] = orjson.loads(body)["outputs"]
    assert (output["datatype"], output["shape"]) == (datatype, list(array.shape))
    decoded = v2_json.decode_tensor(output["data"], datatype, output["shape"], "t")
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@settings(max_examples=300, deadline=None)
@given(tensors(), st.booleans())
def test_grpc_round_trip(tensor: tuple[str, np.ndarray[Any, Any]], raw: bool) -> None:
    datatype, array = tensor
    message = grpc_v2.encode_response(InferResponse("m", [InferOutput("t", array)]), raw=raw)
    [output] = message.outputs
    assert (output.datatype, list(output.shape)) == (datatype, list(array.shape))
    request = grpc_v2.pb.ModelInferRequest()
    tensor_in = request.inputs.add(name="t", datatype=datatype, shape=output.shape)
    tensor_in.contents.CopyFrom(output.contents)
    request.raw_input_contents.extend(message.raw_output_contents)
    [decoded] = grpc_v2.decode_request(request).inputs
    assert decoded.data.dtype == array.dtype and decoded.data.shape == array.shape
    np.testing.assert_array_equal(decoded.data, array)


@settings(max_examples=300, deadline=None)
@given(tensors())
def test_rest_binary_round_trip(tensor: tuple[str, np.ndarray[Any, Any]]) -> None:
    """A binary output, sent back as a binary input, is the same tensor."""
    datatype, array = tensor
    response = InferResponse("m", [InferOutput("t", array)])
    body, header_length = v2_json.encode_infer_response(response, binary_outputs=True)
    assert header_length is not None
    [output] = orjson.loads(body[:header_length])["outputs"]
    assert output["datatype"] == datatype and "data" not in output
    assert output["parameters"]["binary_data_size"] == len(body) - header_length
    header = {"inputs": [{**output, "name": "echo"}]}
    request_header = orjson.dumps(header)
    request = v2_json.decode_infer_request(request_header + body[header_length:], len(request_header))
    [decoded] = request.inputs
    assert decoded.data.dtype == array.dtype and decoded.data.shape == array.shape
    assert decoded.parameters == {}
    np.testing.assert_array_equal(decoded.data, array)
