"""The wire: a threaded HTTP/1.1 server on loopback that writes whatever `Reply` the application decides.

It models how an answer reaches a client, not what it says. A `Reply` is written whole (the usual case),
one byte at a time with a pause between bytes (a "drip": every byte arrives well within any read timeout
but the whole answer takes hours), after a hang, or not at all: the connection is closed, or reset (RST)
the way a crashed gateway looks to a client. Dripping and hanging stop as soon as the server stops, so
tests end quickly. Named `transport` rather than `http` so that it never shadows the standard library.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str
    # Header names in lower case; when a header is repeated, its first value.
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic() once the request was read


@dataclass
class Reply:
    status: int
    body: bytes = b""
    # None sends no Content-Type (answers without a body).
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # "reset" sends RST without an answer, "hang" waits `hang_seconds` first then closes quietly;
    # the request log records both as status 0.
    action: str | None = None
    hang_seconds: float = 0.0
    # Seconds between bytes when the answer is dripped; 0 writes it at once.
    drip_seconds: float = 0.0


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, respond: Callable[[Request], Reply], stopping: threading.Event):
        self.respond = respond
        self.stopping = stopping
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # Clients that drop a connection mid-answer are routine in fault tests, not server errors.
        pass

    def close_open_connections(self):
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KoreCallVolumeSimulator/1.0"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus delayed ACK adds ~40 ms a page
        # (and a dripped answer would leave in clumps rather than byte by byte).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            # The rest of the stream cannot be framed: judge the request as bodiless, then hang up.
            length, self.close_connection = 0, True
        raw_body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        request = Request(self.command, self.path, headers, raw_body, time.monotonic())
        reply = self.server.respond(request)
        if reply.action == "hang":
            self.server.stopping.wait(reply.hang_seconds)
        if reply.action is not None:
            self._drop_connection(reset=reply.action == "reset")
            return
        self.send_response(reply.status)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.drip_seconds > 0:
            self._drip(reply.body, reply.drip_seconds)
            return
        self.end_headers()
        self.wfile.write(reply.body)

    def _drip(self, body: bytes, pause: float) -> None:
        """Status line, headers and body, one byte per write, `pause` seconds apart, until done or stopped."""
        self._headers_buffer.append(b"\r\n")
        answer = b"".join(self._headers_buffer) + body
        self._headers_buffer = []
        stopping = self.server.stopping
        for index in range(len(answer)):
            if index and stopping.wait(pause):
                break
            self.wfile.write(answer[index:index + 1])
        else:
            return
        self.close_connection = True

    def _drop_connection(self, reset: bool):
        self.close_connection = True
        if reset:
            # Linger 0 makes close() send RST, the way a crashed gateway looks to the client.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
