"""HTTP/2 framing (RFC 9113) for the gRPC listener: reading frames, and building the few it sends.

Only what a gRPC server needs: no server push, no priorities (read and ignored), and response
headers as HPACK literals that never enter a dynamic table, so the encoder has no state and the
headers a server sends on every call are built once (`literal_header`, `HeaderBlock`).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = struct.Struct(">BHBBL")  # length (24 bits, as 8 + 16), type, flags, stream id
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1
_STREAM_MASK = MAX_WINDOW
_U32 = struct.Struct(">L")
_U32_PAIR = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")


class FrameType(enum.IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(enum.IntFlag):
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    ENHANCE_YOUR_CALM = 0xB


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


class ProtocolError(Exception):
    """The peer broke the protocol: the connection ends with GOAWAY carrying `code`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: FrameType, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return FRAME_HEADER.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id) + payload


def settings(values: Iterable[tuple[Setting, int]]) -> bytes:
    return frame(FrameType.SETTINGS, 0, 0, b"".join(_SETTING.pack(key, value) for key, value in values))


SETTINGS_ACK = frame(FrameType.SETTINGS, Flag.ACK, 0)


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
    return [_SETTING.unpack_from(payload, offset) for offset in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def parse_window_update(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
    increment: int = _U32.unpack(payload)[0] & _STREAM_MASK
    return increment


def rst_stream(stream_id: int, code: ErrorCode) -> bytes:
    return frame(FrameType.RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: ErrorCode, debug: bytes = b"") -> bytes:
    return frame(FrameType.GOAWAY, 0, 0, _U32_PAIR.pack(last_stream_id, code) + debug)


def unpadded(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (RFC 9113 6.1)."""
    if not flags & Flag.PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "padding as long as the frame or longer")
    return payload[1 : len(payload) - payload[0]]


def header_block_fragment(flags: int, payload: bytes) -> bytes:
    """A HEADERS payload's header block fragment: padding and the priority fields taken off."""
    fragment = unpadded(flags, payload)
    if flags & Flag.PRIORITY:
        if len(fragment) < 5:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
        fragment = fragment[5:]
    return fragment


def _hpack_integer(value: int, prefix_bits: int, first_byte: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_header(name: bytes, value: bytes) -> bytes:
    """One header as an HPACK literal without indexing, new name, no Huffman coding (RFC 7541 6.2.2):
    the peer's decoder table never changes, so any block of these can be sent as often as wanted."""
    return b"\x00" + _hpack_integer(len(name), 7, 0) + name + _hpack_integer(len(value), 7, 0) + value


STATUS_200 = b"\x88"  # `:status: 200`, index 8 of HPACK's static table


class FrameReader:
    """Splits the bytes a connection receives into frames, keeping a partial one for the next read."""

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        """The frames complete so far: (type, flags, stream id, payload) each."""
        if self._pending:
            data = self._pending + data
        frames = []
        offset, end = 0, len(data)
        while end - offset >= 9:
            high, low, kind, flags, stream_id = FRAME_HEADER.unpack_from(data, offset)
            length = (high << 16) | low
            if length > self.max_frame_size:
                raise ProtocolError(
                    ErrorCode.FRAME_SIZE_ERROR,
                    f"a frame of {length} bytes, over the {self.max_frame_size} set",
                )
            if end - offset - 9 < length:
                break
            start = offset + 9
            offset = start + length
            frames.append((kind, flags, stream_id & _STREAM_MASK, data[start:offset]))
        self._pending = data[offset:] if offset < end else b""
        return frames

    @property
    def buffered(self) -> int:
        return len(self._pending)
