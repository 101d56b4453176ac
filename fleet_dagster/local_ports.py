"""Ports on this machine, for the servers fleet-dagster starts locally (Ray head, nats-server, tests)."""

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(address: str, timeout_s: float = 0.5) -> bool:
    """`address` is host:port; True once something accepts connections there."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
        return True
    except OSError:
        return False
