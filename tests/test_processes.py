"""The process supervisor's port check: what `make demo` decides before it starts anything."""

from __future__ import annotations

import socket
from pathlib import Path

from shop.processes import HOST, free_port, port_is_free

PROC_NET_TCP = Path("/proc/net/tcp")


def test_a_port_left_in_time_wait_is_free_and_a_listening_port_is_not():
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        server.bind((HOST, port))
        server.listen()
        assert not port_is_free(port)
        with socket.create_connection((HOST, port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
            assert client.recv(1) == b""
    if PROC_NET_TCP.exists():  # Linux: check the test really left the socket in TIME_WAIT
        assert time_wait_on(port), "no socket in TIME_WAIT: the test proves nothing"
    assert port_is_free(port)


def time_wait_on(port: int) -> bool:
    """Whether the kernel's TCP table lists a TIME_WAIT (state 06) socket on local port `port`."""
    rows = [line.split() for line in PROC_NET_TCP.read_text().splitlines()[1:]]
    return any(int(row[1].split(":")[1], 16) == port and row[3] == "06" for row in rows)
