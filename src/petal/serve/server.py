"""Run the app under uvicorn: in the foreground (`petal serve`) or in a background thread.

Connections are guarded here, below the app, because uvicorn has no deadline for a
request's headers and its connection limit counts idle sockets: 65 sockets that sent
nothing locked every other client out for as long as they stayed open. `GuardedProtocol`
(uvicorn's h11 protocol) therefore
  - closes a connection whose request headers are not complete `header_timeout_s` after
    it opened or after its previous response (idle and slowloris sockets), with a 408;
  - at `max_connections`, makes room by closing the connection that has waited longest
    without sending a request, so idle sockets never crowd out a client that talks;
  - answers a connection it cannot make room for with a JSON 503 and `Retry-After`.
Each open connection holds at most ~1 MiB of upload in memory (Starlette spools larger
files to disk); what a request costs after its body has arrived is bounded in the app.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from petal.errors import PetalError


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_connections: int = 256


def _json_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for use outside the app."""
    body = json.dumps({"detail": detail}).encode()
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n").encode() + body


TIMED_OUT = _json_response(408, "Request Timeout", "request headers took too long: send the "
                           "whole request at once")
OVER_CAPACITY = _json_response(503, "Service Unavailable", "server busy: too many open "
                               "connections; retry shortly")


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and idle-first eviction (module doc)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.waiting_since = 0.0  # when it started waiting for request headers
        self.header_deadline: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_headers()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole request head has arrived
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def waiting_for_headers(self) -> bool:
        return self.header_deadline is not None and self.conn.their_state is h11.IDLE

    def _wait_for_headers(self) -> None:
        self._stop_waiting()
        self.waiting_since = self.loop.time()
        self.header_deadline = self.loop.call_later(self.limits.header_timeout_s,
                                                    self._close, TIMED_OUT)

    def _stop_waiting(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _close(self, response: bytes) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _make_room(self) -> None:
        """Close the longest-waiting idle connections; if none is idle, refuse this one."""
        idle = sorted((c for c in self.connections if c is not self
                       and isinstance(c, GuardedProtocol) and c.waiting_for_headers()),
                      key=lambda c: c.waiting_since)
        excess = len(self.connections) - self.limits.max_connections
        for connection in idle[:excess]:
            connection._close(TIMED_OUT)
        if excess > len(idle):
            self._close(OVER_CAPACITY)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one) and listening, so that the port
    is this process's from now on, however long it works before serving (connections wait
    in the queue); or a PetalError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it each keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(ConnectionLimits.max_connections)
    except OSError as exc:
        sock.close()
        raise PetalError(f"cannot listen on {host}:{port} ({exc.strerror}): "
                         "pass another --port, or --port 0 for any free one") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, calling `ready` once it answers on its sockets."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.ready is not None:
            self.ready()


def _server(app: FastAPI, log_level: str, limits: ConnectionLimits,
            ready: Callable[[], None] | None = None) -> uvicorn.Server:
    protocol = functools.partial(GuardedProtocol, limits=limits)
    return _Server(uvicorn.Config(app, log_level=log_level, http=protocol,
                                  backlog=limits.max_connections, timeout_graceful_shutdown=5),
                   ready)


def serve_forever(app: FastAPI, sock: socket.socket,
                  limits: ConnectionLimits = ConnectionLimits(), log_level: str = "info",
                  ready: Callable[[], None] | None = None) -> None:
    """Serve on `sock` until Ctrl-C; then raise KeyboardInterrupt (petal exits 130).
    log_level "info" logs every request; "warning" only problems. `ready` is called once
    the server answers (to print its address then, not before)."""
    server = _server(app, log_level, limits, ready)
    server.run(sockets=[sock])
    # uvicorn re-raises the Ctrl-C it caught once shut down, but asyncio's own SIGINT
    # handler can turn that into a cancellation of an already finished task and lose it
    # (seen once in CI: exit 0). Only a signal stops this server; SIGTERM's re-raise ends
    # the process before this line, so what reaches it is Ctrl-C.
    if server.should_exit:
        raise KeyboardInterrupt


class BackgroundServer:
    """The app on a free 127.0.0.1 port in a daemon thread: `with BackgroundServer(app) as url:`."""

    def __init__(self, app: FastAPI, start_timeout: float = 60,
                 limits: ConnectionLimits = ConnectionLimits()) -> None:
        self.server = _server(app, "warning", limits)
        self.start_timeout = start_timeout
        self.url = ""
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                        name="petal-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join()
