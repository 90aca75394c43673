"""gRPC for a service at zero: an HTTP/2 connection (cleartext, prior knowledge, as gRPC clients inside a
cluster open it) held until the service has a Ready pod, then joined byte for byte to the pod's gRPC port.

The service is named by the first request's `:authority`, read from the connection's first header block
(HPACK-decoded). gRPC clients send no request before the server's SETTINGS, so the activator sends empty
ones (the protocol's defaults) and acknowledges the client's. The bytes read are then replayed to the
pod, which sees the connection from its very first byte (its HTTP/2 and HPACK state are the client's
own), less the client's acknowledgement of the activator's SETTINGS; and the pod's first SETTINGS
acknowledgement (of what the activator acknowledged already) is not passed back. Every later request
on the connection goes to the same pod, as with any connection-level balancing of gRPC.

A client that is refused (no such service, past the hold deadline, the wake failed) gets a GOAWAY with
the reason as its debug data and REFUSED_STREAM (the request was not processed, so it may be retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import hpack

from kubeserve_activator.activity import RequestActivity
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.holding import Holder, Unavailable
from kubeserve_activator.hosts import target_of_host
from kubeserve_activator.interfaces import Endpoints, Targets
from kubeserve_activator.metrics import ActivatorMetrics

log = logging.getLogger(__name__)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_BYTES = 9
HEADERS, SETTINGS, GOAWAY, CONTINUATION = 0x1, 0x4, 0x7, 0x9
ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20
REFUSED_STREAM = 0x7
MAX_PREAMBLE_BYTES = 64 * 1024  # the preface, the client's settings and its first header block fit
PREAMBLE_SECONDS = 10.0
CHUNK_BYTES = 64 * 1024


class NotGrpc(Exception):
    """The connection does not start as an HTTP/2 client does, or its first request names no host."""


def frame(kind: int, flags: int, payload: bytes = b"", stream: int = 0) -> bytes:
    return len(payload).to_bytes(3) + bytes((kind, flags)) + stream.to_bytes(4) + payload


@dataclass(frozen=True)
class Preamble:
    data: bytes
    """What the pod is to be sent first: everything read, less the acknowledgement of our SETTINGS."""
    authority: str
    acknowledged: bool
    """Whether the client's acknowledgement of our SETTINGS came (and was left out) already."""


async def _frame(reader: asyncio.StreamReader, budget: int) -> tuple[bytes, bytes]:
    header = await reader.readexactly(FRAME_HEADER_BYTES)
    length = int.from_bytes(header[:3])
    if FRAME_HEADER_BYTES + length > budget:
        raise NotGrpc(f"no request within the first {MAX_PREAMBLE_BYTES} bytes")
    return header, await reader.readexactly(length)


async def read_authority(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Preamble:
    """Read up to the end of the first header block, answering the client's SETTINGS on the way."""
    seen = bytearray(await reader.readexactly(len(PREFACE)))
    if seen != PREFACE:
        raise NotGrpc("not an HTTP/2 connection with prior knowledge")
    header, payload = await _frame(reader, MAX_PREAMBLE_BYTES - len(seen))
    if header[3] != SETTINGS or header[4] & ACK:
        raise NotGrpc("the client's preface does not end with its SETTINGS")
    seen += header + payload
    writer.write(frame(SETTINGS, 0) + frame(SETTINGS, ACK))
    acknowledged = False
    block: bytearray | None = None
    while True:
        header, payload = await _frame(reader, MAX_PREAMBLE_BYTES - len(seen))
        kind, flags = header[3], header[4]
        if kind == SETTINGS and flags & ACK and not acknowledged:
            acknowledged = True
            continue
        seen += header + payload
        if block is None and kind == HEADERS:
            block = bytearray(_fragment(payload, flags))
        elif block is not None and kind == CONTINUATION:
            block += payload
        elif block is not None:
            raise NotGrpc(f"frame type {kind} inside a header block")
        if block is not None and flags & END_HEADERS:
            try:
                fields = hpack.Decoder().decode(bytes(block), raw=True)
            except hpack.HPACKError as error:
                raise NotGrpc(f"undecodable header block: {error}") from error
            authority = next(
                (
                    bytes(value).decode("latin-1")
                    for name, value in fields
                    if name in (b":authority", b"host")
                ),
                "",
            )
            if not authority:
                raise NotGrpc("the first request names no :authority")
            return Preamble(bytes(seen), authority, acknowledged)


def _fragment(payload: bytes, flags: int) -> bytes:
    """A HEADERS frame's header block fragment, without its padding and priority fields."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload or payload[0] >= len(payload):
            raise NotGrpc("bad padding in a HEADERS frame")
        start, end = 1, len(payload) - payload[0]
    if flags & PRIORITY:
        start += 5
    if start > end:
        raise NotGrpc("a HEADERS frame shorter than its fields")
    return payload[start:end]


def goaway(reason: str) -> bytes:
    """A GOAWAY frame refusing every stream, with `reason` as its debug data."""
    return frame(GOAWAY, 0, (0).to_bytes(4) + REFUSED_STREAM.to_bytes(4) + reason.encode()[:1024])


class GrpcForwarder:
    """The handler of each connection to the activator's gRPC port."""

    def __init__(
        self,
        config: ActivatorConfig,
        targets: Targets,
        endpoints: Endpoints,
        holder: Holder,
        metrics: ActivatorMetrics,
        activity: RequestActivity,
    ) -> None:
        self._config = config
        self._targets = targets
        self._endpoints = endpoints
        self._holder = holder
        self._metrics = metrics
        self._activity = activity

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(PREAMBLE_SECONDS):
                preamble = await read_authority(reader, writer)
        except (NotGrpc, asyncio.IncompleteReadError, TimeoutError, OSError) as error:
            log.debug("gRPC connection dropped before its first request: %s", error)
            return
        target = target_of_host(self._targets, preamble.authority, self._config.cluster_domain)
        if target is None:
            await _refuse(writer, f"authority {preamble.authority!r} names no service this activator serves")
            return
        with self._activity.serving(target):  # its wake and hold, as for an HTTP request
            try:
                ip, _ = await self._holder.endpoint_for(target)
            except Unavailable as error:
                self._metrics.unavailable.labels(error.reason).inc()
                await _refuse(writer, str(error))
                return
        port = self._endpoints.grpc_port(target)
        if port is None:
            await _refuse(writer, f"service {target} has no gRPC port")
            return
        try:
            async with asyncio.timeout(self._config.connect_timeout_seconds):
                upstream_reader, upstream_writer = await asyncio.open_connection(ip, port)
        except (OSError, TimeoutError) as error:
            await _refuse(writer, f"service {target}: pod {ip}:{port} did not answer: {error!r}")
            return
        try:
            upstream_writer.write(preamble.data)
            await asyncio.gather(
                _pump(reader, upstream_writer, drop_ack=not preamble.acknowledged),
                _pump(upstream_reader, writer, drop_ack=True),
            )
        finally:
            upstream_writer.close()


async def _refuse(writer: asyncio.StreamWriter, reason: str) -> None:
    log.info("gRPC connection refused: %s", reason)
    with contextlib.suppress(OSError):
        writer.write(goaway(reason))
        await writer.drain()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drop_ack: bool) -> None:
    """Copy until the reader's end, then end the writer's side: a half-close passes on as one. With
    `drop_ack`, frame by frame until the first SETTINGS acknowledgement, which is left out."""
    try:
        while drop_ack:
            header = await reader.readexactly(FRAME_HEADER_BYTES)
            payload = await reader.readexactly(int.from_bytes(header[:3]))
            if header[3] == SETTINGS and header[4] & ACK:
                drop_ack = False
            else:
                writer.write(header + payload)
                await writer.drain()
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.IncompleteReadError):  # either side reset, or ended mid-frame
        writer.close()
