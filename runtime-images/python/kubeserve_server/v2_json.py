"""The v2 REST body <-> protocol types, with errors that name the offending field.

Besides plain JSON this reads and writes the binary tensor data extension that v2 clients use for
large tensors: a JSON header of `Inference-Header-Content-Length` bytes, then raw tensor data. An
input with a `binary_data_size` parameter takes its data from there; an output is sent that way
when its requested parameters say `binary_data: true`, or the request's say
`binary_data_output: true`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from kubeserve_server.errors import InvalidInput
from kubeserve_server.protocol import (
    Array,
    InferInput,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    dtype_for,
    element_count,
    tensor_from_raw,
    tensor_to_raw,
)

_NUMPY_KINDS_ACCEPTED = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body is not valid JSON: {error}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def _parameters(value: Any, where: str) -> Parameters:
    if value is None:
        return {}
    parameters: Parameters = _object(value, where)
    for key, item in parameters.items():
        if not isinstance(item, str | int | float | bool):
            raise InvalidInput(f"{where}.{key} must be a string, number or boolean")
    return parameters


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in value
    ):
        raise InvalidInput(f"{where}.shape must be a list of non-negative integers")
    return value


def _uint64(data: Any, inferred: Array, where: str) -> Array:
    """numpy reads integers mixing 0 and values past INT64's range as float64; read them as UINT64.

    Floats that are not whole numbers still fail, as they do for every other integer datatype.
    """
    try:
        exact = np.asarray(data, dtype=np.uint64)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(f"{where}.data does not hold UINT64 values: {error}") from None
    if not np.array_equal(exact.astype(np.float64), inferred):
        raise InvalidInput(f"{where}.data does not hold UINT64 values (found 'f' data)")
    return exact


def bytes_tensor(data: list[Any], where: str) -> Array:
    """JSON strings (nested lists of them) -> an object array of UTF-8 `bytes`.

    Read as Python objects, never as a numpy `U` array, which would drop trailing NUL characters.
    """
    strings = np.asarray(data, dtype=object)
    flat = strings.ravel().tolist()
    if not all(isinstance(item, str) for item in flat):
        raise InvalidInput(f"{where} must hold strings, all at the same depth, for datatype BYTES")
    array = np.empty(len(flat), dtype=object)
    array[:] = [item.encode() for item in flat]
    return array.reshape(strings.shape)


def decode_tensor(data: Any, datatype: str, shape: list[int], where: str) -> Array:
    """JSON data (flat or nested, row-major) -> an array of `datatype` and `shape`, or a 400."""
    dtype = dtype_for(datatype)
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data must be a list (flat or nested)")
    if datatype == "BYTES":
        raw = bytes_tensor(data, f"{where}.data")
    else:
        try:
            raw = np.asarray(data)
        except (ValueError, TypeError, OverflowError) as error:
            raise InvalidInput(f"{where}.data is not a regular array of {datatype}: {error}") from None
    expected = element_count(shape)
    if raw.size != expected:
        raise InvalidInput(f"{where}.data has {raw.size} elements but shape {shape} needs {expected}")
    if datatype == "BYTES":
        return raw.reshape(shape)
    if dtype == np.uint64 and raw.dtype.kind == "f":
        raw = _uint64(data, raw, where)
    if raw.size and raw.dtype.kind not in _NUMPY_KINDS_ACCEPTED[dtype.kind]:
        raise InvalidInput(f"{where}.data does not hold {datatype} values (found {raw.dtype.kind!r} data)")
    if raw.size and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if raw.min() < limits.min or raw.max() > limits.max:
            raise InvalidInput(f"{where}.data has values outside the range of {datatype}")
    return raw.astype(dtype, copy=False).reshape(shape)


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """`header_length` is the Inference-Header-Content-Length: the JSON part's size, if binary follows."""
    binary = b""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {header_length} but the body is {len(body)} bytes"
            )
        body, binary = body[:header_length], body[header_length:]
    document = _object(parse_json(body), "body")
    offset = 0
    inputs_value = document.get("inputs")
    if not isinstance(inputs_value, list) or not inputs_value:
        raise InvalidInput("body.inputs must be a non-empty list of tensors")
    inputs = []
    for index, item in enumerate(inputs_value):
        where = f"inputs[{index}]"
        tensor = _object(item, where)
        name, datatype = tensor.get("name"), tensor.get("datatype")
        if not isinstance(name, str):
            raise InvalidInput(f"{where}.name must be a string")
        if not isinstance(datatype, str):
            raise InvalidInput(f"{where}.datatype must be a string")
        shape = _shape(tensor.get("shape"), where)
        parameters = _parameters(tensor.get("parameters"), f"{where}.parameters")
        size = parameters.pop("binary_data_size", None)
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary) - offset:
                raise InvalidInput(
                    f"{where}.parameters.binary_data_size is {size!r}, but {len(binary) - offset} bytes "
                    "of binary data are left"
                )
            data = tensor_from_raw(binary[offset : offset + size], datatype, shape, where)
            offset += size
        elif "data" in tensor:
            data = decode_tensor(tensor["data"], datatype, shape, where)
        else:
            raise InvalidInput(f"{where}.data is missing (and no binary_data_size parameter)")
        inputs.append(InferInput(name=name, datatype=datatype, shape=shape, data=data, parameters=parameters))
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data after the header belong to no input")
    outputs_value = document.get("outputs", [])
    if not isinstance(outputs_value, list):
        raise InvalidInput("body.outputs must be a list")
    outputs = []
    for index, item in enumerate(outputs_value):
        output = _object(item, f"outputs[{index}]")
        if not isinstance(output.get("name"), str):
            raise InvalidInput(f"outputs[{index}].name must be a string")
        outputs.append(
            RequestedOutput(
                output["name"], _parameters(output.get("parameters"), f"outputs[{index}].parameters")
            )
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("body.id must be a string")
    return InferRequest(
        inputs=inputs,
        outputs=outputs,
        id=request_id,
        parameters=_parameters(document.get("parameters"), "body.parameters"),
    )


def text(item: object) -> str:
    """A BYTES element as JSON text: UTF-8 decoded (undecodable bytes replaced), anything else str()."""
    return item.decode(errors="replace") if isinstance(item, bytes) else str(item)


def _json_data(array: Array) -> Any:
    """Numeric arrays go to orjson as they are (it writes them natively); text goes as str."""
    flat = np.ascontiguousarray(array).ravel()
    if flat.dtype.kind in "SO":
        return [text(item) for item in flat.tolist()]
    if flat.dtype.kind == "U":
        return flat.tolist()
    return flat


def encode_infer_response(response: InferResponse, binary_outputs: bool = False) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary tensor data follows it (else None).

    `binary_outputs` is the request's `binary_data_output`; an output's own `binary_data`
    parameter, echoed from its request, overrides it.
    """
    binary: list[bytes] = []
    outputs = []
    for output in response.outputs:
        parameters = dict(output.parameters)
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if parameters.pop("binary_data", binary_outputs) is True:
            raw = tensor_to_raw(output.data, output.datatype)
            parameters["binary_data_size"] = len(raw)
            binary.append(raw)
        else:
            entry["data"] = _json_data(output.data)
        if parameters:
            entry["parameters"] = parameters
        outputs.append(entry)
    document: dict[str, Any] = {"model_name": response.model_name, "outputs": outputs}
    if response.model_version is not None:
        document["model_version"] = response.model_version
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return header, None
    return b"".join([header, *binary]), len(header)
