"""The operator's TLS connections read in 64 KiB pieces, not into asyncio's resident 256 KiB buffer each."""

from __future__ import annotations

import asyncio
import ssl
from asyncio.sslproto import SSLProtocol

import pytest
import trustme

from kubeserve.handlers.lifecycle import TLS_READ_BYTES, small_tls_reads


async def read_buffer_bytes() -> int:
    """The read buffer of a real TLS connection to a local server."""
    ca = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_side)
    client_side = ssl.create_default_context()
    ca.configure_trust(client_side)
    server = await asyncio.start_server(
        lambda _reader, writer: writer.close(), "127.0.0.1", 0, ssl=server_side
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_side)
        size = len(writer.transport._ssl_protocol._ssl_buffer)  # type: ignore[attr-defined]
        writer.close()
        await writer.wait_closed()
    return size


def test_each_new_tls_connection_gets_a_small_read_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SSLProtocol, "max_size", SSLProtocol.max_size)  # restored after the test
    assert asyncio.run(read_buffer_bytes()) == 256 * 1024, "asyncio's own, which 30 connections held"
    small_tls_reads()
    assert asyncio.run(read_buffer_bytes()) == TLS_READ_BYTES == 64 * 1024
