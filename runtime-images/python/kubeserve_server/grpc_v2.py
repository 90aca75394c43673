"""The gRPC adapter: the v2 `GRPCInferenceService`, translating protobuf to and from the data plane.

Tensors arrive either in typed `contents` or as little-endian `raw_input_contents`; the answer uses
the same form as the request (raw also whenever an output is FP16, which has no typed field).

ModelInfer takes its message as bytes and parses it itself, so that a large one (offload.py's
threshold) is parsed and decoded in the child process, as REST's large bodies are: turning a
message's typed contents into an array takes longer than parsing the same JSON, about a second
for 4 million values, and on the event loop that would stall health, readiness and metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from kubeserve_server.dataplane import DataPlane
from kubeserve_server.errors import InferenceError, InvalidInput
from kubeserve_server.grpc_http2 import GrpcError, Method, StatusCode
from kubeserve_server.metrics import Metrics
from kubeserve_server.offload import Offload
from kubeserve_server.payload_log import PayloadLogger
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from kubeserve_server.protocol import (
    Array,
    InferInput,
    InferRequest,
    InferResponse,
    Parameters,
    RequestedOutput,
    as_bytes,
    dtype_for,
    element_count,
    tensor_from_raw,
    tensor_to_raw,
)

logger = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
RequestT = TypeVar("RequestT", bound=Message)

# Which typed `InferTensorContents` field carries each datatype (FP16 has none: raw only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_STATUS_CODES = {
    400: StatusCode.INVALID_ARGUMENT,
    404: StatusCode.NOT_FOUND,
    413: StatusCode.RESOURCE_EXHAUSTED,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.DEADLINE_EXCEEDED,
}
# Typed contents are read at their widest first, so narrower datatypes can be range-checked.
_WIDE = {"i": np.dtype(np.int64), "u": np.dtype(np.uint64)}


def parameters_from_proto(parameters: Any) -> Parameters:
    result: Parameters = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            result[key] = getattr(parameter, choice)
    return result


def parameters_to_proto(parameters: Parameters, target: Any) -> None:
    for key, value in parameters.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            if value >= 2**63:
                target[key].uint64_param = value
            else:
                target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = value


def decode_input(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> InferInput:
    where = f"input {tensor.name!r}"
    dtype = dtype_for(tensor.datatype)
    shape = list(tensor.shape)
    if any(dim < 0 for dim in shape):
        raise InvalidInput(f"{where}: shape {shape} has a negative dimension")
    expected = element_count(shape)
    data: Array
    if raw is not None:
        data = tensor_from_raw(raw, tensor.datatype, shape, where)
    else:
        field = CONTENTS_FIELDS.get(tensor.datatype)
        if field is None:
            raise InvalidInput(f"{where}: {tensor.datatype} has no typed contents; send raw_input_contents")
        values = getattr(tensor.contents, field)
        if tensor.datatype == "BYTES":
            data = np.empty(len(values), dtype=object)
            data[:] = list(values)
        else:
            wide = np.array(list(values), dtype=_WIDE.get(dtype.kind, dtype))
            if dtype.kind in "iu" and wide.size:
                limits = np.iinfo(dtype)
                if wide.min() < limits.min or wide.max() > limits.max:
                    raise InvalidInput(f"{where}: values outside the range of {tensor.datatype}")
            data = wide.astype(dtype)
    if data.size != expected:
        raise InvalidInput(f"{where}: {data.size} elements but shape {shape} needs {expected}")
    return InferInput(
        name=tensor.name,
        datatype=tensor.datatype,
        shape=shape,
        data=data.reshape(shape),
        parameters=parameters_from_proto(tensor.parameters),
    )


def decode_request(message: pb.ModelInferRequest) -> InferRequest:
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(message.inputs)} inputs")
    return InferRequest(
        inputs=[
            decode_input(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)
        ],
        outputs=[
            RequestedOutput(output.name, parameters_from_proto(output.parameters))
            for output in message.outputs
        ],
        id=message.id or None,
        parameters=parameters_from_proto(message.parameters),
    )


@dataclass(slots=True)
class InferCall:
    """A parsed ModelInfer message: what the handler needs of it, picklable from the child process."""

    model_name: str
    model_version: str | None
    request: InferRequest
    raw: bool  # whether the tensors came as raw_input_contents, so the answer does too
    json: bytes | None  # the message as JSON, for the payload logger when one is configured


def parse_infer_call(body: bytes, keep_json: bool = False) -> InferCall:
    """A serialized ModelInferRequest, parsed and decoded; module-level, to run in the child process."""
    try:
        message = pb.ModelInferRequest.FromString(body)
    except DecodeError as error:
        raise InvalidInput(f"ModelInferRequest is not a valid protobuf message: {error}") from None
    return InferCall(
        model_name=message.model_name,
        model_version=message.model_version or None,
        request=decode_request(message),
        raw=bool(message.raw_input_contents),
        json=json_format.MessageToJson(message).encode() if keep_json else None,
    )


def encode_response(response: InferResponse, raw: bool) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version or "", id=response.id or ""
    )
    parameters_to_proto(response.parameters, message.parameters)
    raw = raw or any(output.datatype == "FP16" for output in response.outputs)
    for output in response.outputs:
        datatype = output.datatype
        tensor = message.outputs.add(name=output.name, datatype=datatype, shape=output.shape)
        parameters_to_proto(output.parameters, tensor.parameters)
        if raw:
            message.raw_output_contents.append(tensor_to_raw(output.data, datatype))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(as_bytes(item) for item in output.data.ravel().tolist())
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(output.data.ravel().tolist())
    return message


class InferenceServicer:
    """The RPC handlers; each one is a thin call into the data plane."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        payload_logger: PayloadLogger | None = None,
        offload: Offload | None = None,
    ) -> None:
        """`offload`: shared with REST, so large requests of both protocols take turns alike."""
        self.dataplane = dataplane
        self.metrics = metrics
        self.payload_logger = payload_logger
        self.offload = offload or Offload()
        self._parse = partial(parse_infer_call, keep_json=payload_logger is not None)
        self._tracker = metrics.track("grpc-v2")

    async def server_live(self, request: pb.ServerLiveRequest) -> Message:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def server_ready(self, request: pb.ServerReadyRequest) -> Message:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def model_ready(self, request: pb.ModelReadyRequest) -> Message:
        try:
            return pb.ModelReadyResponse(
                ready=self.dataplane.model_ready(request.name, request.version or None)
            )
        except InferenceError as error:
            raise _status(error) from None

    async def server_metadata(self, request: pb.ServerMetadataRequest) -> Message:
        return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest) -> Message:
        try:
            metadata = self.dataplane.model_metadata(request.name, request.version or None)
        except InferenceError as error:
            raise _status(error) from None
        return pb.ModelMetadataResponse(**metadata)

    async def model_infer(self, body: bytes) -> Message:
        """A large message waits for a large-request slot, then is parsed off the loop; its model
        call runs in a thread (the message is in memory already: grpc_http2.py reads it whole)."""
        started = self._tracker.start()
        try:
            async with self.offload.admission() as admission:
                await admission.grow(len(body))
                call = await self.offload.decode(self._parse, body)
                response = await self.dataplane.infer(
                    call.model_name, call.model_version, call.request, self.offload.large(len(body))
                )
                answer = encode_response(response, raw=call.raw)
        except InferenceError as error:
            self.metrics.error("grpc-v2", error.status)
            raise _status(error) from None
        except Exception:
            logger.exception("ModelInfer failed")
            self.metrics.error("grpc-v2", 500)
            raise _status(
                InferenceError("internal error in ModelInfer; the server log has the details")
            ) from None
        finally:
            self._tracker.finish(started)
        if self.payload_logger is not None and call.json is not None:
            self.payload_logger.submit(
                call.request.id,
                (call.json, b"application/json"),
                (json_format.MessageToJson(answer).encode(), b"application/json"),
            )
        return answer

    def methods(self) -> dict[str, Method]:
        """Each method by its path, taking and answering serialized messages; ModelInfer parses its own."""
        return {
            f"/{SERVICE}/ServerLive": _parsed(self.server_live, pb.ServerLiveRequest),
            f"/{SERVICE}/ServerReady": _parsed(self.server_ready, pb.ServerReadyRequest),
            f"/{SERVICE}/ModelReady": _parsed(self.model_ready, pb.ModelReadyRequest),
            f"/{SERVICE}/ServerMetadata": _parsed(self.server_metadata, pb.ServerMetadataRequest),
            f"/{SERVICE}/ModelMetadata": _parsed(self.model_metadata, pb.ModelMetadataRequest),
            f"/{SERVICE}/ModelInfer": _serialized(self.model_infer),
        }


def _parsed(function: Callable[[RequestT], Awaitable[Message]], request_type: type[RequestT]) -> Method:
    """`function` taking its request as bytes (INVALID_ARGUMENT if they are no such message)."""

    async def call(body: bytes) -> bytes:
        try:
            request = request_type.FromString(body)
        except DecodeError as error:
            message = f"{request_type.__name__} is not a valid protobuf message: {error}"
            raise GrpcError(StatusCode.INVALID_ARGUMENT, message) from None
        return (await function(request)).SerializeToString()

    return call


def _serialized(function: Callable[[bytes], Awaitable[Message]]) -> Method:
    async def call(body: bytes) -> bytes:
        return (await function(body)).SerializeToString()

    return call


def _status(error: InferenceError) -> GrpcError:
    """The gRPC status matching the error's HTTP status."""
    return GrpcError(_STATUS_CODES.get(error.status, StatusCode.INTERNAL), error.message)
