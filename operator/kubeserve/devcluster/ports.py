"""Loopback ports for the servers the dev cluster, the tests and the benchmarks start."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now (the OS picks them, all held until every one is
    picked, so none repeats; a server started soon after gets its port)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    [port] = free_ports(1)
    return port
