"""Request bodies sent with `Content-Encoding`: gzip and deflate are inflated, others refused with 415.

The size limit applies to the inflated body, so a small compressed body that inflates past it (a
zip bomb) gets 413 after at most the limit plus one byte of output, never the whole expansion.
"""

from __future__ import annotations

import zlib

from kubeserve_server.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

# zlib's window bits for each coding: gzip's header and trailer; deflate is the zlib format (RFC 9110).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def codings(header: bytes | None) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied; 415 for unknown ones."""
    if header is None:
        return []
    names = [token.strip().lower() for token in header.decode("latin-1").split(",")]
    names = [name for name in names if name and name != "identity"]
    for name in names:
        if name not in _WBITS:
            raise UnsupportedMediaType(
                f"Content-Encoding {name!r} is not supported; send gzip, deflate or identity"
            )
    return names


def inflate(body: bytes, names: list[str], limit: int) -> bytes:
    """`body` with its codings undone, last applied first; 413 once it grows past `limit` bytes.

    zlib releases the GIL while it inflates, so callers run this in a thread.
    """
    for name in reversed(names):
        inflater = zlib.decompressobj(_WBITS[name])
        try:
            inflated = inflater.decompress(body, limit + 1)
        except zlib.error as error:
            raise InvalidInput(f"body is not valid {name} data: {error}") from None
        if len(inflated) > limit:
            raise PayloadTooLarge(f"body inflates ({name}) to over the limit of {limit} bytes")
        if not inflater.eof or inflater.unused_data:
            raise InvalidInput(f"body is not one complete {name} stream")
        body = inflated
    return body
