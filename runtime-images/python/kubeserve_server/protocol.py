"""Protocol-neutral inference types shared by the data plane, the models and every adapter.

Tensors travel as numpy arrays from the moment an adapter has decoded them, so a model never sees
JSON or protobuf, and an adapter never needs to know which model format is behind the data plane.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from kubeserve_server.errors import InvalidInput

Parameter: TypeAlias = str | int | float | bool
Parameters: TypeAlias = dict[str, Parameter]
Array: TypeAlias = npt.NDArray[Any]

# v2 datatype name -> numpy dtype. BYTES tensors are object arrays holding `bytes`.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_DATATYPES_BY_DTYPE = {dtype: name for name, dtype in DTYPES.items()}


def datatype_of(array: Array) -> str:
    """The v2 datatype of a model's output; text outputs (numpy `U`/`S`/object) are BYTES."""
    if array.dtype.kind in "USO":
        return "BYTES"
    try:
        return _DATATYPES_BY_DTYPE[array.dtype]
    except KeyError:
        raise TypeError(f"output dtype {array.dtype} has no v2 datatype") from None


def dtype_for(datatype: str) -> np.dtype[Any]:
    """The numpy dtype for a v2 datatype name, or a 400 naming the unknown one."""
    try:
        return DTYPES[datatype]
    except KeyError:
        raise InvalidInput(f"unknown datatype {datatype!r}; expected one of {', '.join(DTYPES)}") from None


def element_count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


_LENGTH = struct.Struct("<I")


def as_bytes(item: object) -> bytes:
    """A BYTES element on the wire: bytes as they are, text (numpy `U` outputs) UTF-8 encoded."""
    return item if isinstance(item, bytes) else str(item).encode()


def tensor_to_raw(array: Array, datatype: str) -> bytes:
    """The protocol's raw form: little-endian elements, or for BYTES a 4-byte length before each."""
    if datatype == "BYTES":
        items = [as_bytes(item) for item in array.ravel().tolist()]
        return b"".join(_LENGTH.pack(len(item)) + item for item in items)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def tensor_from_raw(raw: bytes, datatype: str, shape: list[int], where: str) -> Array:
    """The inverse of `tensor_to_raw`, refusing data that does not fill `shape` exactly."""
    dtype = dtype_for(datatype)
    expected = element_count(shape)
    if datatype != "BYTES":
        if len(raw) != expected * dtype.itemsize:
            needed = expected * dtype.itemsize
            raise InvalidInput(
                f"{where}: raw data is {len(raw)} bytes, shape {shape} of {datatype} needs {needed}"
            )
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"{where}: truncated BYTES length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"{where}: BYTES element runs past the end of the data")
        items.append(raw[offset : offset + length])
        offset += length
    if len(items) != expected:
        raise InvalidInput(f"{where}: {len(items)} BYTES elements but shape {shape} needs {expected}")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


@dataclass(slots=True)
class InferInput:
    name: str
    datatype: str
    shape: list[int]
    data: Array
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    inputs: list[InferInput]
    outputs: list[RequestedOutput] = field(default_factory=list)
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferOutput:
    name: str
    data: Array
    parameters: Parameters = field(default_factory=dict)

    @property
    def datatype(self) -> str:
        return datatype_of(self.data)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(slots=True)
class InferResponse:
    model_name: str
    outputs: list[InferOutput]
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a model says about one of its tensors; -1 in a shape is any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
