"""Run the app under uvicorn: in the foreground (`petal serve`) or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from petal.errors import PetalError

# Open connections beyond this get 503 from uvicorn: with the upload limit, this bounds
# the memory that requests in flight can hold.
MAX_CONNECTIONS = 64


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one), or a PetalError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it each keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PetalError(f"cannot listen on {host}:{port} ({exc.strerror}): "
                         "pass another --port, or --port 0 for any free one") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: FastAPI, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level,
                                         limit_concurrency=MAX_CONNECTIONS,
                                         timeout_graceful_shutdown=5))


def serve_forever(app: FastAPI, sock: socket.socket) -> None:
    """Serve on `sock` until Ctrl-C; then raise KeyboardInterrupt (petal exits 130)."""
    server = _server(app, "info")
    server.run(sockets=[sock])
    # uvicorn re-raises the Ctrl-C it caught once shut down, but asyncio's own SIGINT
    # handler can turn that into a cancellation of an already finished task and lose it
    # (seen once in CI: exit 0). Only a signal stops this server; SIGTERM's re-raise ends
    # the process before this line, so what reaches it is Ctrl-C.
    if server.should_exit:
        raise KeyboardInterrupt


class BackgroundServer:
    """The app on a free 127.0.0.1 port in a daemon thread: `with BackgroundServer(app) as url:`."""

    def __init__(self, app: FastAPI, start_timeout: float = 60) -> None:
        self.server = _server(app, "warning")
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
