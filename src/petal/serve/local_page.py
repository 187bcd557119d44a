"""What petal's local pages (the review page, the labelling queue) share: one page
(static/decide.html) that shows photos one at a time and sends a decision on each, an API
behind it, and the guards: they bind to 127.0.0.1 and answer only a request with their token.

    GET  /                 the page
    GET  /api/items        what the page shows: title, summary, next_step, classes, the
                           actions and filters, and the items [{key, name, lines, suggested,
                           action, label, tags}]
    GET  /api/photo        ?key=K&size=large|small: item K's photo, downscaled
    POST /api/decide       {"key", "action" ("" takes a decision back), "label"} -> {item}

As in Jupyter, a random token is made when the server starts and printed in the page's
address (`http://127.0.0.1:PORT/?token=...`). The page sends it with every request (the
X-Petal-Token header, or ?token= for an <img>); without it a request gets 403, so another web
site open in the same browser cannot read the photos or post decisions. A Host header other
than the loopback address is refused too (DNS rebinding), and so is a cross-site Origin.
"""

from __future__ import annotations

import hmac
import io
import json
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol, TypeVar
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from petal.data.image import ImageLoadError, load_image, read_image_file
from petal.errors import PetalError
from petal.serve.limits import BodyLimit
from petal.serve.server import bind, serve_forever, url_of
from petal.serve.static_page import add_static_page

LOOPBACK = "127.0.0.1"
TOKEN_HEADER = "x-petal-token"
PHOTO_SIDES = {"large": 720, "small": 120}  # longest side of a photo as the page shows it
OPEN_PATHS = {"/favicon.ico", "/favicon.svg", "/healthz"}  # no token needed
MAX_DECISION_BYTES = 64 * 1024  # a decision is a path, an action and a class name
T = TypeVar("T")


class Decision(BaseModel):
    key: str
    action: str
    label: str = ""


class DecisionSource(Protocol):
    """What a page decides on (a review folder, a labelling queue)."""

    def page(self) -> dict:
        """The page's title, summary, next_step, classes, actions and filters."""

    def items(self) -> list[dict]:
        """The items in the page's order."""

    def photo(self, key: str) -> Path:
        """The file of item `key`; PetalError for an unknown key."""

    def decide(self, decision: Decision) -> dict:
        """Record a decision (on disk before it returns); the item as it now is."""


def create_decision_app(source: DecisionSource) -> FastAPI:
    """The page and its API (module docstring) over `source`; wrap it in TokenRequired."""
    app = FastAPI(title="petal", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_upload_bytes=MAX_DECISION_BYTES, option="")

    add_static_page(app, "decide.html")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    # plain functions: FastAPI runs them on its thread pool, off the event loop
    @app.get("/api/items")
    def items() -> dict:
        return {**source.page(), "items": _or_422(source.items)}

    @app.get("/api/photo")
    def photo(key: str, size: Annotated[str, Query()] = "large") -> Response:
        return photo_response(_or_422(lambda: source.photo(key)), size)

    @app.post("/api/decide")
    def decide(decision: Decision) -> dict:
        return {"item": _or_422(lambda: source.decide(decision))}

    return app


def shown(name: str) -> str:
    """A file name as the page shows it: a byte that is not UTF-8 (a surrogate, as the file
    system gives it: os.fsdecode) as the text \\xNN, which JSON can carry and `named` undoes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def named(shown_name: str) -> str:
    """The file name `shown` showed as `shown_name`."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]),
                 shown_name.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def _or_422(work: Callable[[], T]) -> T:
    """work(), with a PetalError answered as 422 and its message."""
    try:
        return work()
    except PetalError as exc:
        raise HTTPException(422, str(exc)) from exc


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenRequired:
    """ASGI middleware: 403 unless the request carries `token` (the X-Petal-Token header,
    `Authorization: Bearer`, or ?token=) and, with `loopback_only`, names a loopback host.
    A page served to the network (`petal serve --host 0.0.0.0`) is reached by other names:
    there the token alone keeps out whoever does not have it."""

    def __init__(self, app: ASGIApp, token: str, loopback_only: bool = True) -> None:
        self.app, self.token, self.loopback_only = app, token, loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": problem}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def problem(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").rsplit(":", 1)[0].strip("[]")
        if self.loopback_only and host not in {LOOPBACK, "localhost", "::1"}:
            return "this page answers only at 127.0.0.1: open the address petal printed"
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != headers.get("host"):
            return "a request from another site is refused"
        if scope["path"] in OPEN_PATHS:
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        bearer = headers.get("authorization", "")
        given = (headers.get(TOKEN_HEADER) or (bearer[7:] if bearer[:7].lower() == "bearer "
                                               else "") or (query.get("token") or [""])[0])
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return ("this page needs its token: open the address petal printed, with its "
                    "?token=...")
        return None


def photo_response(path: Path, side: str) -> Response:
    """The photo at `path` as a JPEG at most PHOTO_SIDES[side] pixels long (petal's image
    limits apply); 404 or 422 with the reason when it cannot be shown."""
    if side not in PHOTO_SIDES:
        raise HTTPException(422, f"size {side!r}: use {' or '.join(PHOTO_SIDES)}")
    try:
        image = load_image(read_image_file(path), min_size=PHOTO_SIDES[side])
    except ImageLoadError as exc:
        raise HTTPException(404 if exc.reason == "missing" else 422,
                            f"{path.name} cannot be shown: {exc.message}") from exc
    image.thumbnail((PHOTO_SIDES[side], PHOTO_SIDES[side]))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return Response(buffer.getvalue(), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


def listen(port: int) -> socket.socket:
    """A socket on 127.0.0.1:`port` (0: any free one)."""
    if not 0 <= port <= 65535:
        raise PetalError(f"--port {port}: use 0-65535 (0: any free one)")
    return bind(LOOPBACK, port)


def serve_page(app: ASGIApp, sock: socket.socket, what: str) -> None:
    """Serve until Ctrl-C, printing the page's address with a new token once it answers.
    Requests are not logged: their lines would carry the token and bury the address."""
    token = new_token()

    def say_address() -> None:
        print(f"{what}: open {url_of(sock)}/?token={token}  (Ctrl-C stops it; every decision "
              "is already on disk)", flush=True)

    serve_forever(TokenRequired(app, token), sock, log_level="warning", ready=say_address)
