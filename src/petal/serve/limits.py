"""Refuse what the server should not process: oversized or stalled bodies, unusable images."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petal.data.image import ImageLoadError

# Past these, a refused upload is answered without reading the rest of it.
DRAIN_BYTES = 64 * 2**20
DRAIN_SECONDS = 10

# Room for the multipart boundaries and part headers around an upload of the maximum size.
MULTIPART_SLACK = 64 * 1024

# HTTP status for each ImageLoadError reason; any other reason is 422 (undecodable).
IMAGE_ERROR_STATUS = {"not_image": 415, "unsupported_mode": 415, "too_many_pixels": 413,
                      "too_large": 413, "out_of_memory": 413}


def too_large(max_upload_bytes: int, option: str = "--max-upload-mb") -> str:
    limit = f"{max_upload_bytes / 2**20:g} MiB" if max_upload_bytes >= 2**20 \
        else f"{max_upload_bytes // 1024} KiB"
    return f"upload too large: the limit is {limit}" + (f" ({option})" if option else "")


def image_error(error: ImageLoadError) -> HTTPException:
    """415 for files that are not (usable) images, 413 for decompression bombs, else 422."""
    return HTTPException(IMAGE_ERROR_STATUS.get(error.reason, 422), error.message)


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_upload_bytes` (+ multipart slack),
    408 for a body that stalls.

    A declared Content-Length over the limit is refused before the app sees the request;
    otherwise bytes are counted as they arrive and the app's reading stops at the limit,
    so neither a lying header nor a chunked upload makes the server buffer more. Before
    a 413 goes out, the rest of the body is read and thrown away (up to DRAIN_BYTES, for
    at most DRAIN_SECONDS): a client still sending would otherwise meet a reset connection
    instead of the answer. A body that sends nothing for `idle_s`, or is not complete
    `deadline_s` after it started (a slow-POST attack holds a connection that way), is
    answered 408 at once and its connection closed.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, idle_s: float = 15.0,
                 deadline_s: float = 120.0, option: str = "--max-upload-mb") -> None:
        self.app, self.max_upload_bytes, self.option = app, max_upload_bytes, option
        self.max_body = max_upload_bytes + MULTIPART_SLACK
        self.idle_s, self.deadline_s = idle_s, deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_body:
            if int(declared) <= DRAIN_BYTES:
                await drain(receive)
            response = JSONResponse({"detail": too_large(self.max_upload_bytes, self.option)}, 413)
            return await response(scope, receive, send)
        received, body_done, refused, stalled = 0, False, False, False
        deadline = asyncio.get_running_loop().time() + self.deadline_s

        async def counting_receive() -> Message:
            nonlocal received, body_done, refused, stalled
            if body_done:  # after the body: only a disconnect can come, wait as long as it takes
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(max(0.0, min(self.idle_s, left))):
                    message = await receive()
            except TimeoutError:
                refused = stalled = True
                raise HTTPException(408, "the upload stalled: send the whole request without "
                                    "pauses", headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
            if received > self.max_body:
                refused = True
                raise HTTPException(413, too_large(self.max_upload_bytes, self.option))
            return message

        async def draining_send(message: Message) -> None:
            if refused and not (body_done or stalled) and message["type"] == "http.response.start":
                await drain(receive)
            await send(message)

        await self.app(scope, counting_receive, draining_send)


async def drain(receive: Receive) -> None:
    """Read and discard what is left of a request body, within DRAIN_BYTES and DRAIN_SECONDS."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= DRAIN_BYTES:
                message = await receive()
                drained += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
    except TimeoutError:
        return  # a slow client: answer now, and the server closes the connection
