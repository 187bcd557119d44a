"""The server under abuse: idle, slow and excess connections, stalled uploads, bursts, bombs.

A well-behaved client must still be answered while they go on, and every refusal is an
HTTP answer with a JSON body (503s with Retry-After), never a hang or a plain-text page.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import petal
from conftest import pattern
from petal.inference.classifier import Classifier
from petal.serve.app import ServeOptions, create_app
from petal.serve.served import ServedModel
from petal.serve.server import BackgroundServer, ConnectionLimits

PHOTO = pattern(7, size=(120, 90))
LIMITS = ConnectionLimits(header_timeout_s=1.0, max_connections=32)
OPTIONS = ServeOptions(max_upload_bytes=256 * 1024, body_idle_s=1.0, body_deadline_s=3.0)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tiny_run: Path) -> Iterator[str]:
    models = [ServedModel("tiny", petal.load(tiny_run))]
    with BackgroundServer(create_app(models, OPTIONS), limits=LIMITS) as url:
        yield url


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _good_request(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    response = httpx.post(f"{url}/api/predict", files={"file": ("a.jpg", _jpeg(PHOTO))},
                          timeout=30)
    return response.status_code, time.perf_counter() - start


def _read_response(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (or `seconds` pass)."""
    sock.settimeout(seconds)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def _json_body(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def test_idle_and_slowloris_sockets_do_not_lock_out_a_client(server: str) -> None:
    """100 silent sockets and 100 that trickle header bytes, against a limit of 32."""
    stop = threading.Event()
    idle = [socket.create_connection(_address(server)) for _ in range(100)]
    slow = [socket.create_connection(_address(server)) for _ in range(100)]

    def trickle() -> None:
        head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10_000
        for byte in head:
            if stop.wait(0.1):
                return
            for sock in slow:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        answers = [_good_request(server) for _ in range(20)]
        time.sleep(0.5)
        answers += [_good_request(server) for _ in range(20)]
    finally:
        stop.set()
        trickler.join()
        for sock in idle + slow:
            sock.close()
    statuses, seconds = zip(*answers)
    assert set(statuses) == {200}
    assert np.percentile(seconds, 95) < 1.0, seconds


def test_silent_socket_gets_408_at_the_header_deadline(server: str) -> None:
    with socket.create_connection(_address(server)) as sock:
        start = time.perf_counter()
        raw = _read_response(sock, 10)
    assert raw.startswith(b"HTTP/1.1 408 ") and 0.8 < time.perf_counter() - start < 5
    assert "too long" in _json_body(raw)["detail"]


def test_trickled_headers_are_cut_at_the_deadline(server: str) -> None:
    """Bytes that keep arriving do not extend the deadline (that is what slowloris relies on)."""
    with socket.create_connection(_address(server)) as sock:
        start = time.perf_counter()
        sock.settimeout(0.2)
        closed_after = None
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.send(bytes([byte]))
                if sock.recv(65536):
                    closed_after = time.perf_counter() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.perf_counter() - start
                break
    assert closed_after is not None and closed_after < 5


def test_stalled_upload_gets_408(server: str) -> None:
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + _jpeg(PHOTO)[:1000])
    head = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n")
    with socket.create_connection(_address(server)) as sock:
        sock.sendall(head + body)  # then nothing more
        start = time.perf_counter()
        raw = _read_response(sock, 10)
    assert raw.startswith(b"HTTP/1.1 408 ") and time.perf_counter() - start < 5
    assert "stalled" in _json_body(raw)["detail"]


def test_busy_connections_past_the_limit_get_a_json_503(tiny_run: Path) -> None:
    """When every connection is mid-upload, the next is told to come back, in JSON."""
    models = [ServedModel("tiny", petal.load(tiny_run))]
    limits = ConnectionLimits(header_timeout_s=5.0, max_connections=4)
    with BackgroundServer(create_app(models, OPTIONS), limits=limits) as url:
        uploading = []
        for _ in range(4):
            sock = socket.create_connection(_address(url))
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            uploading.append(sock)
        time.sleep(0.2)
        try:
            response = httpx.get(f"{url}/healthz", timeout=10)
        finally:
            for sock in uploading:
                sock.close()
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "too many open connections" in response.json()["detail"]


class _Gated:
    """A real model's run_batch that waits for a gate: holds inference as long as a test says."""

    def __init__(self, classifier: Classifier) -> None:
        self.run_batch, self.gate = classifier._run_batch, threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.gate.wait(30)
        return self.run_batch(batch)


def test_full_queue_waits_then_answers_503_with_retry_after(tiny_run: Path) -> None:
    real = petal.load(tiny_run)
    gated = _Gated(real)
    models = [ServedModel("tiny", Classifier(real.card, gated, "torch"))]
    options = ServeOptions(queue_size=2, queue_wait_s=0.5)
    gated.gate.set()  # open for the warm-up at start
    with BackgroundServer(create_app(models, options), limits=LIMITS) as url:
        gated.gate.clear()

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as session:
                def post() -> asyncio.Task:
                    return asyncio.ensure_future(session.post(
                        "/api/predict", files={"file": ("a.jpg", _jpeg(PHOTO))}))
                held = [post(), post()]
                await asyncio.sleep(0.5)
                start = time.perf_counter()
                refused = await post()
                waited = time.perf_counter() - start
                gated.gate.set()
                return [*(await asyncio.gather(*held)), refused, waited]

        *held, refused, waited = asyncio.run(scenario())
    assert [r.status_code for r in held] == [200, 200]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "retry" in refused.json()["detail"] and waited >= 0.45


def test_burst_of_200_is_queued_not_refused(tiny_run: Path) -> None:
    """200 requests at once, on 200 connections, with the default limits: all answered."""
    async def burst(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as session:
            return await asyncio.gather(*[
                session.post("/api/predict", files={"file": ("a.jpg", _jpeg(PHOTO))})
                for _ in range(200)])

    models = [ServedModel("tiny", petal.load(tiny_run))]
    with BackgroundServer(create_app(models)) as url:
        statuses = [r.status_code for r in asyncio.run(burst(url))]
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}


@pytest.mark.parametrize("size", [(20_000, 1), (60_000, 1)])
def test_thin_image_bomb_is_refused_fast(server: str, size: tuple[int, int]) -> None:
    start = time.perf_counter()
    response = httpx.post(f"{server}/api/predict", timeout=30,
                          files={"file": ("l.png", _png(Image.new("RGB", size)))})
    assert response.status_code == 422 and "strip" in response.json()["detail"]
    assert time.perf_counter() - start < 2


def test_large_image_decodes_on_its_own_low_priority_thread(server: str) -> None:
    """20 megapixels: answered, decoded on the one large-image thread, which runs at nice 19."""
    response = httpx.post(f"{server}/api/predict", timeout=60,
                          files={"file": ("big.png", _png(Image.new("L", (5_000, 4_000))))})
    assert response.status_code == 200, response.text
    large = [t for t in threading.enumerate() if t.name.startswith("petal-decode-large")]
    assert len(large) == 1
    assert os.getpriority(os.PRIO_PROCESS, large[0].native_id) == 19
