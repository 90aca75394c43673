"""Slow and unfinished requests time out: a client that never sends its headers, trickles them, or
stops partway through its body gets 408 and loses the connection, so it cannot hold one forever."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from kubeserve_server.config import parse_args
from tests.server.conftest import Server, Trained, running_server
from tests.server.test_observability import samples

# Generous against the 1 s timeouts: only a server that never times out runs into it.
WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory, sklearn_iris: Trained) -> Iterator[Server]:
    args = ("--header_timeout=1", "--body_timeout=1")
    with running_server(tmp_path_factory.mktemp("logs"), sklearn_iris.model_dir, "sklearn", *args) as server:
        yield server


def connect(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.http_port))
    connection.settimeout(WAIT_SECONDS)
    return connection


def answer_then_close(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_the_defaults_are_sensible() -> None:
    config = parse_args(["--model_name=m"])
    assert 1 < config.header_timeout <= 60 and 10 < config.body_timeout <= 300
    with pytest.raises(SystemExit):
        parse_args(["--model_name=m", "--header_timeout=0"])


@pytest.mark.parametrize("sent", [b"", b"POST /v2/models/iris/in", b"GET / HTTP/1.1\r\nHost: x\r\n"])
def test_headers_that_never_finish_get_408_and_a_closed_connection(
    strict_server: Server, sent: bytes
) -> None:
    with connect(strict_server) as connection:
        connection.sendall(sent)
        received = answer_then_close(connection)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert received.endswith(b'{"error": "request headers did not arrive within 1s"}')


def test_trickled_headers_time_out_though_bytes_keep_coming(strict_server: Server) -> None:
    """The deadline runs from the request's first byte, not from the last one, as slowloris would need."""
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000
    with connect(strict_server) as connection:
        for byte in request:
            readable, _, _ = select.select([connection], [], [], 0.1)
            if readable:
                break
            connection.sendall(bytes([byte]))
        received = answer_then_close(connection)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_a_body_that_stops_arriving_gets_408(strict_server: Server) -> None:
    before = samples(strict_server)
    head = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with connect(strict_server) as connection:
        connection.sendall(head + b'{"inputs": ')
        received = answer_then_close(connection)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in received
    assert received.endswith(b'{"error":"the body did not arrive within 1s"}')
    key = ("kubeserve_request_errors_total", (("model", "iris"), ("protocol", "v2"), ("status", "408")))
    assert samples(strict_server)[key] - before.get(key, 0.0) == 1


def test_many_half_open_connections_are_all_closed(strict_server: Server) -> None:
    connections = [connect(strict_server) for _ in range(50)]
    try:
        for index, connection in enumerate(connections):
            connection.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\n" if index % 2 else b"")
        answers = [answer_then_close(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


def test_a_prompt_client_is_unaffected(strict_server: Server) -> None:
    body = b'{"instances": [[6.3, 3.3, 6.0, 2.5]]}'
    head = b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    with connect(strict_server) as connection:
        connection.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        response = answer_then_close(connection)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b'{"predictions":[2]}')
