"""The REST adapter: a bare ASGI app for the v2 and v1 protocols, health, metadata and /metrics.

No web framework: routing is a handful of regular expressions and bodies are bytes handed to orjson,
because framework layers cost more per request than a small model's predict does.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, TypeAlias

import numpy as np
import orjson

from kubeserve_server.config import DEFAULT_BODY_TIMEOUT
from kubeserve_server.content_coding import codings, inflate
from kubeserve_server.dataplane import DataPlane
from kubeserve_server.errors import InferenceError, InvalidInput, PayloadTooLarge, RequestTimeout
from kubeserve_server.metrics import Metrics
from kubeserve_server.offload import Admission, Offload
from kubeserve_server.openapi import openapi_document
from kubeserve_server.payload_log import PayloadLogger
from kubeserve_server.protocol import Array
from kubeserve_server.v2_json import (
    bytes_tensor,
    decode_infer_request,
    encode_infer_response,
    parse_json,
    text,
)

logger = logging.getLogger(__name__)

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
Headers: TypeAlias = list[tuple[bytes, bytes]]
Response: TypeAlias = tuple[int, bytes, Headers]
Handler: TypeAlias = Callable[[Scope, Receive, "re.Match[str]"], Awaitable[Response]]

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"
# The binary tensor data extension: the JSON part's length, when raw tensor data follows it.
INFERENCE_HEADER = b"inference-header-content-length"
JSON_HEADERS: Headers = [(b"content-type", JSON)]
_VERSIONED = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
# The status nginx logs for a request its client closed: the client's doing, so never a 5xx in metrics.
CLIENT_CLOSED_REQUEST = 499


class _ClientGone(Exception):
    """The client disconnected before sending its whole body: there is no one to answer."""


def _json(status: int, document: Any) -> Response:
    return status, orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY), JSON_HEADERS


def _error(status: int, message: str) -> Response:
    return status, orjson.dumps({"error": message}), JSON_HEADERS


def _header(scope: Scope, name: bytes) -> bytes | None:
    headers: Headers = scope["headers"]
    for header, value in headers:
        if header == name:
            return value
    return None


def _int_header(scope: Scope, name: bytes) -> int | None:
    value = _header(scope, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"header {name.decode()} must be an integer, got {value[:40]!r}") from None


def _v1_instances(document: Any) -> Array:
    """A v1 body's `instances` (or `inputs`) as one array; strings become a BYTES tensor."""
    if not isinstance(document, dict):
        raise InvalidInput("body must be a JSON object with 'instances' or 'inputs'")
    key = "instances" if "instances" in document else "inputs"
    value = document.get(key)
    if not isinstance(value, list) or not value:
        raise InvalidInput("body.instances (or body.inputs) must be a non-empty list")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(f"body.{key} is not a regular array: {error}") from None
    if array.dtype.kind == "U":
        return bytes_tensor(value, f"body.{key}")
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"body.{key} must hold numbers, booleans or strings, all of one kind")
    return array


def decode_v1(body: bytes) -> Array:
    """A v1 body's instances; module-level, so large bodies can be decoded in another process."""
    return _v1_instances(parse_json(body))


def _v1_predictions(array: Array) -> Any:
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    flat = [text(item) for item in array.ravel().tolist()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


class RestApp:
    """The ASGI callable that uvicorn serves."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        max_request_size: int,
        payload_logger: PayloadLogger | None = None,
        offload: Offload | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_request_size = max_request_size
        self.body_timeout = body_timeout
        self.payload_logger = payload_logger
        self.offload = offload or Offload()
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(_VERSIONED + "/infer"), {"POST": self._tracked("v2", self._v2_infer)}),
            (
                re.compile(r"/v1/models/(?P<name>[^/:]+):predict"),
                {"POST": self._tracked("v1", self._v1_predict)},
            ),
            (re.compile(r"/v2/health/live"), {"GET": self._live}),
            (re.compile(r"/"), {"GET": self._v1_live}),
            (re.compile(r"/v2/health/ready"), {"GET": self._ready}),
            (re.compile(_VERSIONED + "/ready"), {"GET": self._v2_model_ready}),
            (re.compile(_VERSIONED), {"GET": self._v2_model_metadata}),
            (re.compile(r"/v2"), {"GET": self._v2_server_metadata}),
            (re.compile(r"/v1/models"), {"GET": self._v1_models}),
            (re.compile(r"/v1/models/(?P<name>[^/:]+)"), {"GET": self._v1_model}),
            (re.compile(r"/metrics"), {"GET": self._metrics}),
            (re.compile(r"/openapi\.json"), {"GET": self._openapi}),
        ]
        self._openapi_body = orjson.dumps(openapi_document(dataplane.model.name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._dispatch(scope, receive)
        except _ClientGone:
            return
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if status == RequestTimeout.status or self.dataplane.draining:
            # A late body may still be arriving; a draining server wants its clients to reconnect
            # elsewhere, through the Service that no longer routes to it.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, scope: Scope, receive: Receive) -> Response:
        path: str = scope["path"]
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(scope["method"])
            if handler is None:
                return _error(405, f"{scope['method']} is not allowed on {path}; use {', '.join(methods)}")
            try:
                return await handler(scope, receive, match)
            except InferenceError as error:
                status, body, headers = _error(error.status, error.message)
                if error.retry_after is not None:
                    headers = [*headers, (b"retry-after", str(error.retry_after).encode())]
                return status, body, headers
            except _ClientGone:
                raise
            except Exception:
                logger.exception("%s %s failed", scope["method"], path)
                return _error(500, f"internal error serving {path}; the server log has the details")
        return _error(404, f"no route for {path}")

    async def _body(self, scope: Scope, receive: Receive, admission: Admission) -> bytes:
        """The whole request body, inflated if it was compressed (415 for a coding we cannot undo)."""
        names = codings(_header(scope, b"content-encoding"))
        body = await self._read(scope, receive, admission)
        if names:
            body = await asyncio.to_thread(inflate, body, names, self.max_request_size)
            await admission.grow(len(body))
        return body

    async def _read(self, scope: Scope, receive: Receive, admission: Admission) -> bytes:
        """The body as sent, refusing with 413 as soon as it is known to be over the limit.

        The whole body must arrive within the body timeout (408 otherwise), so a client that
        trickles it cannot hold a connection; time spent waiting for a large-request slot is ours
        and does not count.
        """
        limit = self.max_request_size
        length = _int_header(scope, b"content-length")
        if length is not None and length > limit:
            raise PayloadTooLarge(f"body of {length} bytes is over the limit of {limit} bytes")
        await admission.grow(length or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout

        async def receive_in_time() -> Message:
            try:
                async with asyncio.timeout_at(deadline):
                    return await receive()
            except TimeoutError:
                raise RequestTimeout(f"the body did not arrive within {self.body_timeout:g}s") from None

        message = await receive_in_time()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and message["type"] == "http.request":
            if len(body) > limit:
                raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive_in_time()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
            waiting = loop.time()
            await admission.grow(size)
            deadline += loop.time() - waiting
        if message["type"] == "http.disconnect":
            raise _ClientGone
        return b"".join(chunks)

    def _tracked(self, protocol: str, handler: Handler) -> Handler:
        """`handler` with its protocol's request, latency, in-flight and error metrics around it."""
        tracker = self.metrics.track(protocol)

        async def tracked(scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
            started = tracker.start()
            try:
                return await handler(scope, receive, match)
            except InferenceError as error:
                self.metrics.error(protocol, error.status)
                raise
            except _ClientGone:
                self.metrics.error(protocol, CLIENT_CLOSED_REQUEST)
                raise
            except Exception:
                self.metrics.error(protocol, 500)
                raise
            finally:
                tracker.finish(started)

        return tracked

    async def _v2_infer(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        async with self.offload.admission() as admission:
            body = await self._body(scope, receive, admission)
            request_header_length = _int_header(scope, INFERENCE_HEADER)
            request = await self.offload.decode(
                partial(decode_infer_request, header_length=request_header_length), body
            )
            response = await self.dataplane.infer(
                match["name"], match["version"], request, self.offload.large(len(body))
            )
            binary_outputs = request.parameters.get("binary_data_output") is True
            answer, header_length = encode_infer_response(response, binary_outputs)
            if header_length is None:
                headers = JSON_HEADERS
            else:
                headers = [(b"content-type", OCTET_STREAM), (INFERENCE_HEADER, str(header_length).encode())]
            if self.payload_logger is not None:
                self.payload_logger.submit(
                    request.id,
                    (body, JSON if request_header_length is None else OCTET_STREAM),
                    (answer, headers[0][1]),
                )
            return 200, answer, headers

    async def _v1_predict(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        async with self.offload.admission() as admission:
            body = await self._body(scope, receive, admission)
            instances = await self.offload.decode(decode_v1, body)
            predictions = await self.dataplane.predict_v1(
                match["name"], instances, self.offload.large(len(body))
            )
            answer = orjson.dumps(
                {"predictions": _v1_predictions(predictions)}, option=orjson.OPT_SERIALIZE_NUMPY
            )
            if self.payload_logger is not None:
                self.payload_logger.submit(None, (body, JSON), (answer, JSON))
            return 200, answer, JSON_HEADERS

    async def _live(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return _json(200, {"live": self.dataplane.live()})

    async def _v1_live(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        """KServe's v1 liveness shape: its v1 client reads `status` and fails on anything else."""
        return _json(200, {"status": "alive"})

    async def _ready(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        ready = self.dataplane.ready()
        return _json(200 if ready else 503, {"ready": ready})

    async def _v2_model_ready(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        ready = self.dataplane.model_ready(match["name"], match["version"])
        return _json(200 if ready else 503, {"name": match["name"], "ready": ready})

    async def _v2_model_metadata(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return _json(200, self.dataplane.model_metadata(match["name"], match["version"]))

    async def _v2_server_metadata(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return _json(200, self.dataplane.server_metadata())

    async def _v1_models(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return _json(200, {"models": [self.dataplane.model.name]})

    async def _v1_model(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        ready = self.dataplane.model_ready(match["name"])
        return _json(200 if ready else 503, {"name": match["name"], "ready": ready})

    async def _metrics(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return 200, self.metrics.exposition(), [(b"content-type", self.metrics.content_type.encode())]

    async def _openapi(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        return 200, self._openapi_body, JSON_HEADERS
