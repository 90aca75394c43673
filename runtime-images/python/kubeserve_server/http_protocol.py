"""uvicorn's httptools protocol with a deadline for a request's headers.

uvicorn times out only idle keep-alive connections: one that opens and sends nothing, or half a
request line, holds its socket and memory forever, and a few hundred such clients exhaust the
server. Here a request's headers must arrive within the header timeout, counted from the
connection's start or from the request's first byte; a late one gets 408 and the connection is
closed. The body's own deadline is the ASGI app's (rest.py), which can answer it.

The close lingers: after the 408 the server ends its side and reads (and drops) what the client still
sends for a moment. Closing a socket with unread input makes the kernel reset the connection, and a
client still trickling its headers would then lose the 408 it was sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
LINGER_SECONDS = 2.0


def with_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http` setting, closing connections whose headers are late."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _lingering = False

        def data_received(self, data: bytes) -> None:
            if not self._lingering:  # after the 408, input is read only to be dropped
                super().data_received(data)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined request's headers are late while an earlier one is answered: end after it.
                self.cycle.keep_alive = False
                return
            message = b'{"error": "request headers did not arrive within %gs"}' % seconds
            self.transport.write(REQUEST_TIMEOUT % (len(message), message))
            self._lingering = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

    return HeaderTimeoutProtocol
