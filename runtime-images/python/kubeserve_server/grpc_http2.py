"""gRPC's unary calls over our own HTTP/2, on the event loop: the server for grpc_v2.py's methods.

grpc.aio's C core hands each call's events to the event loop through a thread and a socket write
apiece: measured, it spent 0.36 to 0.54 ms of CPU per call with a method that did nothing, half or
more of a whole REST request, and our gRPC served 0.36x to 0.76x our REST. Here a connection is an
`asyncio.Protocol`: frames are parsed as they arrive, a call's task starts once its message is
complete, and its answer (headers, message and trailers) goes out in the one write that also carries
every other answer finished in the same turn of the loop.

Unary calls only, as all of the v2 protocol's methods are. Requests' headers are decoded with the
`hpack` library; responses' headers are HPACK literals that never enter a table (h2_frames.py), so
the few a server sends are built once. Costs are bounded: streams at once per connection
(advertised), a header list's size, the connection preface's and a header block's arrival
(`header_timeout`, as REST's request headers) and a request message's (`body_timeout`), and the
message size (RESOURCE_EXHAUSTED, read from the length prefix before the message arrives).
Received data is acknowledged (WINDOW_UPDATE) as it is read, so windows do not bound memory: the
message size and the stream limit do, as they did with grpcio, which reads whole messages too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import cast

import hpack

from kubeserve_server.h2_frames import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    MAX_FRAME_SIZE_LIMIT,
    MAX_WINDOW,
    PREFACE,
    SETTINGS_ACK,
    STATUS_200,
    ErrorCode,
    Flag,
    FrameReader,
    FrameType,
    ProtocolError,
    Setting,
    frame,
    goaway,
    header_block_fragment,
    literal_header,
    parse_settings,
    parse_window_update,
    rst_stream,
    settings,
    unpadded,
    window_update,
)
from kubeserve_server.http_protocol import LINGER_SECONDS

logger = logging.getLogger(__name__)

Method = Callable[[bytes], Awaitable[bytes]]
"""A unary method: the request message's bytes in, the response message's out; a GrpcError fails it."""

# grpc-go and nginx allow 100 to 250 streams at once; clients queue calls beyond the limit.
MAX_CONCURRENT_STREAMS = 128
# grpc-core's own default: a gRPC call's headers are a few hundred bytes.
MAX_HEADER_LIST_SIZE = 16 * 1024
# What we let a client send ahead: the first 64 KiB window would need an acknowledgement every few
# requests; data is read at once anyway, so a larger window costs no memory of its own.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 4 << 20
# Frames we accept: larger than the default 16 KiB, so a large message is fewer frames to parse.
MAX_RECEIVE_FRAME_SIZE = 1 << 20
_MESSAGE_PREFIX = struct.Struct(">BL")  # compressed flag, length
_TIMEOUT = re.compile(rb"(\d{1,8})([HMSmun])")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


class StatusCode(enum.IntEnum):
    """gRPC's status codes (those this server sends, and OK)."""

    OK = 0
    CANCELLED = 1
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


class GrpcError(Exception):
    """Ends a call with `code` and `message` (sent percent-encoded as grpc-message)."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_size: int
    header_timeout: float
    body_timeout: float
    max_concurrent_streams: int = MAX_CONCURRENT_STREAMS
    max_header_list_size: int = MAX_HEADER_LIST_SIZE


def parse_timeout(value: bytes) -> float:
    """A grpc-timeout header's seconds: up to 8 digits and a unit (H, M, S, m, u, n)."""
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        raise GrpcError(StatusCode.INTERNAL, f"malformed grpc-timeout {value.decode(errors='replace')!r}")
    return int(match[1]) * _TIMEOUT_UNITS[match[2]]


def percent_encoded(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, then every byte outside printable ASCII, and %, as %XX."""
    return b"".join(
        bytes((byte,)) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
        for byte in message.encode()
    )


_CONTENT_TYPE = literal_header(b"content-type", b"application/grpc")
_ACCEPT_ENCODING = literal_header(b"grpc-accept-encoding", b"identity")
_RESPONSE_HEADERS = STATUS_200 + _CONTENT_TYPE + _ACCEPT_ENCODING
_TRAILERS_OK = literal_header(b"grpc-status", b"0")
_END_HEADERS = Flag.END_HEADERS
_END_STREAM_HEADERS = Flag.END_HEADERS | Flag.END_STREAM


def _trailers_only(error: GrpcError) -> bytes:
    """The header block of an answer that is only a status: headers and trailers in one."""
    return (
        _RESPONSE_HEADERS
        + literal_header(b"grpc-status", b"%d" % error.code)
        + literal_header(b"grpc-message", percent_encoded(error.message))
    )


class _Stream:
    """One call: its request message as it arrives, then its task, then its answer as windows allow."""

    __slots__ = (
        "body_timer",
        "chunks",
        "deadline_passed",
        "deadline_timer",
        "id",
        "length",
        "method",
        "path",
        "pending",
        "received",
        "remote_closed",
        "send_window",
        "task",
        "unacked",
    )

    def __init__(self, stream_id: int, send_window: int, method: Method, path: bytes) -> None:
        self.id = stream_id
        self.method = method
        self.path = path
        self.chunks: list[bytes] = []
        self.received = 0
        self.length: int | None = None  # the message's, from its prefix
        self.unacked = 0
        self.send_window = send_window
        self.pending: memoryview | None = None  # answer bytes waiting for the client's windows
        self.task: asyncio.Task[None] | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.deadline_passed = False
        self.remote_closed = False


class _Connection(asyncio.Protocol):
    def __init__(self, server: GrpcServer) -> None:
        self._server = server
        self._limits = server.limits
        self._methods = server.methods
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._reader = FrameReader(MAX_RECEIVE_FRAME_SIZE)
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = self._limits.max_header_list_size
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, _Stream] = {}  # streams with answer bytes waiting for a window
        self._last_stream_id = 0
        self._preface: bytes | None = b""  # what arrived of it; None once it is complete
        self._header_block: bytearray | None = None  # a block whose CONTINUATION frames are due
        self._header_stream_id = 0
        self._header_end_stream = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._send_window = DEFAULT_WINDOW
        self._initial_send_window = DEFAULT_WINDOW
        self._max_send_frame = DEFAULT_MAX_FRAME_SIZE
        self._unacked = 0
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._close_after_flush = False
        self._going_away = False  # no new streams: the client's GOAWAY or ours
        self._goaway_sent = False
        self._closed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass of it
        self._server.connections.add(self)
        self._write(
            settings(
                [
                    (Setting.MAX_CONCURRENT_STREAMS, self._limits.max_concurrent_streams),
                    (Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                    (Setting.MAX_FRAME_SIZE, MAX_RECEIVE_FRAME_SIZE),
                    (Setting.MAX_HEADER_LIST_SIZE, self._limits.max_header_list_size),
                    (Setting.ENABLE_PUSH, 0),
                ]
            )
            + window_update(0, CONNECTION_WINDOW - DEFAULT_WINDOW)
        )
        self._arm_header_timer("the connection preface and SETTINGS")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.closed(self)
        self._disarm_header_timer()
        for stream in list(self._streams.values()):
            self._forget(stream)
        self._out.clear()

    def pause_writing(self) -> None:
        # What we send has backed up: the client is not reading. Read nothing more from it until it
        # has, or frames that each ask for an answer (PING, SETTINGS, calls) would queue answers
        # without bound.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closed or self._close_after_flush:
            return
        # What these frames make us send (PING and SETTINGS acknowledgements, window updates) waits
        # for the answers of the calls they start, so that one write carries all: the flush is
        # queued after the calls' tasks, whose first step answers an inline model's call.
        queued, self._flush_scheduled = self._flush_scheduled, True
        try:
            if self._preface is not None:
                rest = self._read_preface(data)
                if rest is None:
                    return
                data = rest
            for kind, flags, stream_id, payload in self._reader.feed(data):
                if self._header_block is not None and kind != FrameType.CONTINUATION:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "a frame between HEADERS and CONTINUATION")
                if kind == FrameType.DATA:
                    self._on_data(flags, stream_id, payload)
                elif kind == FrameType.HEADERS:
                    self._on_headers(flags, stream_id, payload)
                elif kind == FrameType.WINDOW_UPDATE:
                    self._on_window_update(stream_id, payload)
                elif kind == FrameType.SETTINGS:
                    self._on_settings(flags, stream_id, payload)
                elif kind == FrameType.PING:
                    self._on_ping(flags, stream_id, payload)
                elif kind == FrameType.RST_STREAM:
                    self._on_rst_stream(stream_id, payload)
                elif kind == FrameType.CONTINUATION:
                    self._on_continuation(flags, stream_id, payload)
                elif kind == FrameType.GOAWAY:
                    self._on_goaway()
                elif kind == FrameType.PUSH_PROMISE:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "clients may not push")
                # PRIORITY and unknown frame types are ignored, as RFC 9113 says
                if self._closed:
                    return
        except ProtocolError as error:
            self._fail(error.code, str(error))
        finally:
            if not queued:
                self._loop.call_soon(self._flush)

    def eof_received(self) -> bool | None:
        return None  # close: a unary call's client has nothing to wait for once it stops sending

    # the preface and the header timeout

    def _read_preface(self, data: bytes) -> bytes | None:
        """The bytes after the client's preface once it has arrived whole, None until then."""
        assert self._preface is not None
        arrived = self._preface + data
        if arrived[: len(PREFACE)] != PREFACE[: len(arrived)]:
            raise ProtocolError(
                ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface (h2c prior knowledge)"
            )
        if len(arrived) < len(PREFACE):
            self._preface = arrived
            return None
        self._preface = None
        return arrived[len(PREFACE) :]

    def _arm_header_timer(self, what: str) -> None:
        self._disarm_header_timer()
        self._header_timer = self._loop.call_later(self._limits.header_timeout, self._headers_late, what)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self, what: str) -> None:
        self._header_timer = None
        self._fail(ErrorCode.PROTOCOL_ERROR, f"{what} did not arrive within {self._limits.header_timeout:g}s")

    # frames

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & Flag.ACK:
            return
        if self._header_timer is not None and self._header_block is None:
            self._disarm_header_timer()  # the preface's SETTINGS: the connection is set up
        grown = False
        for key, value in parse_settings(payload):
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE over 2^31-1")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                grown = grown or delta > 0
            elif key == Setting.MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value} out of range")
                self._max_send_frame = value
        self._write(SETTINGS_ACK)
        if grown:
            self._pump_blocked()

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
        if not flags & Flag.ACK:
            self._write(frame(FrameType.PING, Flag.ACK, 0, payload))

    def _on_goaway(self) -> None:
        """The client stops: the calls it started still get their answers, then the connection ends."""
        self._going_away = True
        self._after_stream()

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
        if stream_id == 0 or stream_id > self._last_stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._forget(stream)
            self._after_stream()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        increment = parse_window_update(payload)
        if stream_id == 0:
            if increment == 0:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._pump_blocked()
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream already answered: the client's update crossed our last frame
        if increment == 0 or stream.send_window + increment > MAX_WINDOW:
            self._reset(stream, ErrorCode.PROTOCOL_ERROR if increment == 0 else ErrorCode.FLOW_CONTROL_ERROR)
            return
        stream.send_window += increment
        if stream.pending is not None:
            self._pump(stream)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or not stream_id % 2:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        fragment = header_block_fragment(flags, payload)
        if flags & Flag.END_HEADERS:
            self._on_header_block(stream_id, bool(flags & Flag.END_STREAM), fragment)
            return
        self._header_block = bytearray(fragment)
        self._header_stream_id = stream_id
        self._header_end_stream = bool(flags & Flag.END_STREAM)
        self._arm_header_timer("a request's CONTINUATION frames")

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._header_block is None or stream_id != self._header_stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        self._header_block += payload
        if len(self._header_block) > 2 * self._limits.max_header_list_size:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "header block over the header list size")
        if flags & Flag.END_HEADERS:
            block, self._header_block = bytes(self._header_block), None
            self._disarm_header_timer()
            self._on_header_block(stream_id, self._header_end_stream, block)

    def _on_header_block(self, stream_id: int, end_stream: bool, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block, raw=True)
        except hpack.OversizedHeaderListError:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "header list over the size set") from None
        except hpack.HPACKError as error:
            raise ProtocolError(ErrorCode.COMPRESSION_ERROR, f"bad header block: {error}") from None
        existing = self._streams.get(stream_id)
        if existing is not None:  # trailers: gRPC clients send none, but they would end the body
            if end_stream and not existing.remote_closed:
                self._end_of_body(existing)
            else:
                self._reset(existing, ErrorCode.PROTOCOL_ERROR)
            return
        if stream_id <= self._last_stream_id:
            raise ProtocolError(ErrorCode.STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        self._last_stream_id = stream_id
        if self._going_away or len(self._streams) >= self._limits.max_concurrent_streams:
            self._write(rst_stream(stream_id, ErrorCode.REFUSED_STREAM))
            return
        path = timeout = encoding = content_type = method_name = None
        for name, value in headers:
            if name == b":path":
                path = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"content-type":
                content_type = value
            elif name == b":method":
                method_name = value
        if method_name != b"POST" or content_type is None or not content_type.startswith(b"application/grpc"):
            # Not a gRPC request: the HTTP status gRPC's spec names (405 or 415), and no gRPC status.
            status = b"405" if method_name != b"POST" else b"415"
            block = literal_header(b":status", status)
            self._write(frame(FrameType.HEADERS, _END_STREAM_HEADERS, stream_id, block))
            if not end_stream:
                self._write(rst_stream(stream_id, ErrorCode.NO_ERROR))
            return
        method = self._methods.get(path) if path is not None else None
        try:
            if method is None:
                raise GrpcError(
                    StatusCode.UNIMPLEMENTED, f"unknown method {(path or b'').decode(errors='replace')}"
                )
            if encoding is not None and encoding != b"identity":
                coding = encoding.decode(errors="replace")
                raise GrpcError(
                    StatusCode.UNIMPLEMENTED, f"grpc-encoding {coding} is not supported; send identity"
                )
            seconds = None if timeout is None else parse_timeout(timeout)
        except GrpcError as error:
            self._write(frame(FrameType.HEADERS, _END_STREAM_HEADERS, stream_id, _trailers_only(error)))
            if not end_stream:
                self._write(rst_stream(stream_id, ErrorCode.NO_ERROR))
            return
        stream = _Stream(stream_id, self._initial_send_window, method, path or b"")
        self._streams[stream_id] = stream
        if seconds is not None:
            stream.deadline_timer = self._loop.call_later(seconds, self._deadline_passed, stream)
        if end_stream:
            self._end_of_body(stream)
        else:
            stream.body_timer = self._loop.call_later(self._limits.body_timeout, self._body_late, stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._unacked += size
        if self._unacked >= CONNECTION_WINDOW // 2:
            self._write(window_update(0, self._unacked))
            self._unacked = 0
        data = unpadded(flags, payload)
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self._last_stream_id:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # a stream answered early or reset: what it still sends is dropped
        stream.chunks.append(data)
        stream.received += len(data)
        if stream.length is None and stream.received >= 5:
            head = stream.chunks[0] if len(stream.chunks[0]) >= 5 else b"".join(stream.chunks)
            compressed, stream.length = _MESSAGE_PREFIX.unpack_from(head)
            if compressed:
                self._finish(stream, StatusCode.INTERNAL, "a compressed message without grpc-encoding")
                return
            if stream.length > self._limits.max_message_size:
                self._finish(
                    stream,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"the request message of {stream.length} bytes is larger than the limit of "
                    f"{self._limits.max_message_size} bytes (--max_request_size)",
                )
                return
        if flags & Flag.END_STREAM:
            stream.remote_closed = True
            self._end_of_body(stream)
            return
        stream.unacked += size
        if stream.unacked >= STREAM_WINDOW // 2:
            self._write(window_update(stream_id, stream.unacked))
            stream.unacked = 0

    # calls

    def _end_of_body(self, stream: _Stream) -> None:
        stream.remote_closed = True
        if stream.body_timer is not None:
            stream.body_timer.cancel()
            stream.body_timer = None
        chunks, stream.chunks = stream.chunks, []
        if stream.length is None or stream.received != 5 + stream.length:
            what = "none" if stream.length is None else "more or less than one"
            self._finish(stream, StatusCode.INTERNAL, f"a unary call takes one request message, got {what}")
            return
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        stream.task = self._loop.create_task(self._call(stream, body[5:]))

    async def _call(self, stream: _Stream, message: bytes) -> None:
        try:
            answer = await stream.method(message)
        except GrpcError as error:
            self._finish(stream, error.code, error.message)
        except asyncio.CancelledError:
            if stream.deadline_passed:
                self._finish(
                    stream, StatusCode.DEADLINE_EXCEEDED, "the call's deadline (grpc-timeout) passed"
                )
            # otherwise the client reset the stream, or the connection is gone: nobody to answer
        except Exception:
            logger.exception("gRPC call %s failed", stream.path.decode(errors="replace"))
            self._finish(stream, StatusCode.INTERNAL, "internal error; the server log has the details")
        else:
            self._respond(stream, answer)

    def _deadline_passed(self, stream: _Stream) -> None:
        stream.deadline_timer = None
        stream.deadline_passed = True
        if stream.task is not None:
            stream.task.cancel()
        else:
            self._finish(stream, StatusCode.DEADLINE_EXCEEDED, "the call's deadline (grpc-timeout) passed")

    def _body_late(self, stream: _Stream) -> None:
        stream.body_timer = None
        self._finish(
            stream,
            StatusCode.DEADLINE_EXCEEDED,
            f"the request message did not arrive within {self._limits.body_timeout:g}s",
        )

    def _respond(self, stream: _Stream, answer: bytes) -> None:
        if stream.id not in self._streams or self._closed:
            return
        message = _MESSAGE_PREFIX.pack(0, len(answer)) + answer
        size = len(message)
        headers = frame(FrameType.HEADERS, _END_HEADERS, stream.id, _RESPONSE_HEADERS)
        if size <= self._max_send_frame and size <= self._send_window and size <= stream.send_window:
            self._send_window -= size
            self._write(
                headers
                + frame(FrameType.DATA, 0, stream.id, message)
                + frame(FrameType.HEADERS, _END_STREAM_HEADERS, stream.id, _TRAILERS_OK)
            )
            self._done(stream)
            return
        self._write(headers)
        stream.pending = memoryview(message)
        self._pump(stream)

    def _pump(self, stream: _Stream) -> None:
        """Send what the windows allow of the stream's answer; the trailers once it is all sent."""
        pending = stream.pending
        assert pending is not None
        while pending:
            size = min(len(pending), self._send_window, stream.send_window, self._max_send_frame)
            if size <= 0:
                stream.pending = pending
                self._blocked[stream.id] = stream
                return
            self._write(frame(FrameType.DATA, 0, stream.id, bytes(pending[:size])))
            pending = pending[size:]
            self._send_window -= size
            stream.send_window -= size
        stream.pending = None
        self._blocked.pop(stream.id, None)
        self._write(frame(FrameType.HEADERS, _END_STREAM_HEADERS, stream.id, _TRAILERS_OK))
        self._done(stream)

    def _pump_blocked(self) -> None:
        for stream in list(self._blocked.values()):
            if self._send_window <= 0:
                return
            self._pump(stream)

    def _finish(self, stream: _Stream, code: StatusCode, message: str) -> None:
        """End the call with a status and no message (gRPC's trailers-only answer)."""
        if stream.id not in self._streams or self._closed:
            return
        self._write(
            frame(FrameType.HEADERS, _END_STREAM_HEADERS, stream.id, _trailers_only(GrpcError(code, message)))
        )
        self._done(stream)

    def _done(self, stream: _Stream) -> None:
        """The answer is sent: a client still sending is told to stop (RFC 9113 8.1)."""
        if not stream.remote_closed:
            self._write(rst_stream(stream.id, ErrorCode.NO_ERROR))
        self._forget(stream)
        self._after_stream()

    def _reset(self, stream: _Stream, code: ErrorCode) -> None:
        self._write(rst_stream(stream.id, code))
        self._forget(stream)
        self._after_stream()

    def _forget(self, stream: _Stream) -> None:
        self._streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)
        for timer in (stream.body_timer, stream.deadline_timer):
            if timer is not None:
                timer.cancel()
        stream.body_timer = stream.deadline_timer = None
        if stream.task is not None and not stream.task.done() and stream.task is not asyncio.current_task():
            stream.task.cancel()

    def _after_stream(self) -> None:
        """While the server drains, a connection ends after each answer, so its client reconnects
        elsewhere (REST's `Connection: close`); one going away ends with its last stream."""
        if self._server.draining:
            self.go_away()
        elif self._going_away and not self._streams:
            self._close_soon()

    # output

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed or self._transport is None:
            return
        if self._out:
            self._transport.write(b"".join(self._out) if len(self._out) > 1 else self._out[0])
            self._out.clear()
        if self._close_after_flush:
            self._closed = True
            self._linger()

    def _linger(self) -> None:
        """End our side, then read and drop what the client still sends for a moment before closing:
        a close with unread input makes the kernel reset the connection, and a reset can cost the
        client the answers and the GOAWAY just sent (http_protocol.py does the same for REST)."""
        assert self._transport is not None
        if not self._transport.can_write_eof():  # TLS: close_notify, then the close
            self._transport.close()
            return
        self._transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, self._transport.close)

    def _close_soon(self) -> None:
        self._close_after_flush = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _fail(self, code: ErrorCode, message: str) -> None:
        """A connection error: GOAWAY with the reason, then close (streams in flight are ended)."""
        logger.debug("closing a gRPC connection: %s", message)
        self._out.append(goaway(self._last_stream_id, code, message.encode()[:200]))
        for stream in list(self._streams.values()):
            self._forget(stream)
        self._close_soon()
        self._flush()

    def go_away(self) -> None:
        """No new calls: GOAWAY naming the last stream served; the connection ends with its calls."""
        if self._closed:
            return
        if not self._goaway_sent:
            self._goaway_sent = self._going_away = True
            self._write(goaway(self._last_stream_id, ErrorCode.NO_ERROR))
        if not self._streams:
            self._close_soon()

    def drain(self) -> None:
        """An idle connection goes away now, a busy one after its next answer (`_after_stream`)."""
        if not self._streams:
            self.go_away()

    def abort(self) -> None:
        if self._transport is not None and not self._closed:
            self._flush()
            self._transport.abort()


class GrpcServer:
    """gRPC's unary methods, by path (`/package.Service/Method`), on a listening socket."""

    def __init__(self, methods: Mapping[str, Method], limits: Limits) -> None:
        self.methods = {path.encode(): method for path, method in methods.items()}
        self.limits = limits
        self.connections: set[_Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None

    def closed(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def start(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        """Serve on `sock` (bound and listening); with `tls`, HTTP/2 over TLS (ALPN h2), else h2c."""
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self),
            sock=sock,
            ssl=tls,
            ssl_handshake_timeout=self.limits.header_timeout if tls is not None else None,
        )

    def drain(self) -> None:
        """Tell every client to go away once its calls are answered; new connections are served, one
        call each (see `_Connection._after_stream`)."""
        self.draining = True
        for connection in list(self.connections):
            connection.drain()

    async def stop(self, grace: float) -> None:
        """Stop listening, let calls in flight finish for up to `grace` seconds, then close."""
        if self._server is not None:
            self._server.close()
        self.draining = True
        for connection in list(self.connections):
            connection.go_away()
        if self.connections:
            self._all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace)
        for connection in list(self.connections):
            connection.abort()
