"""A Redis-protocol server in pure Python, for machines with no redis-server.

fakeredis' TcpFakeServer, with TCP_NODELAY on every accepted socket: without it each small reply
waits for Nagle's algorithm and the broker manages ~11 tasks/s instead of ~220.
Run: python -m devstack.embedded_redis --port 6390 [--ready-file PATH]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import threading
from pathlib import Path

from fakeredis import TcpFakeServer
from fakeredis._clients._tcp_server import TCPFakeRequestHandler


class NoDelayHandler(TCPFakeRequestHandler):
    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()


class EmbeddedRedis(TcpFakeServer):
    def __init__(self, address: tuple[str, int]):
        super().__init__(address, server_type="redis")
        self.RequestHandlerClass = NoDelayHandler
        self.daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    server = EmbeddedRedis((args.host, args.port))
    port = server.server_address[1]

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        args.ready_file.write_text(json.dumps({"port": port}))
    print(f"embedded redis listening on {args.host}:{port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
