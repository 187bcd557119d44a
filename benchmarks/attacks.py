"""The attacks of `serve_load.py --attack`, each run for a while beside good clients.

  idle         N sockets that connect and send nothing, reopened when the server closes them
  slowloris    N sockets that send a request head one byte a second, reopened likewise
  slow-body    N uploads that declare 10 MiB and send one byte every 5 s, reopened likewise
  burst        N simultaneous good requests on N connections, every 2 s
  thin-image   4 clients posting a 20000 x 1 PNG (141 bytes) in a loop
  large-image  2 clients posting a 64-megapixel grey + alpha PNG (124 KB; at ~0.8 GB the
               costliest decode the size policy lets through) in a loop
  two-files    4 clients posting two photos as two `file` parts of one request in a loop
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
from PIL import Image

ATTACKS = ("idle", "slowloris", "slow-body", "burst", "thin-image", "large-image", "two-files")
SLOWLORIS_HEAD = b"POST /api/predict HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: a\r\n" * 2000
SLOW_BODY_HEAD = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
                  b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n')


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def _socket_attacker(url: str, stop: asyncio.Event, tally: Counter, prefix: bytes,
                           drip: bytes, interval: float) -> None:
    """One socket at a time: connect, send `prefix`, then `drip` a byte per `interval`, until
    the server answers or closes; then again, until `stop`."""
    host, port = url.removeprefix("http://").split(":")
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            tally[f"connect failed: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.2)
            continue
        tally["connections"] += 1
        answer = asyncio.ensure_future(reader.read(64))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            writer.write(prefix)
            sent = 0
            while True:
                await asyncio.wait({answer, stopping}, timeout=interval,
                                   return_when=asyncio.FIRST_COMPLETED)
                if answer.done() or stopping.done():
                    break
                if sent < len(drip):
                    writer.write(drip[sent:sent + 1])
                    sent += 1
            if answer.done() and not answer.exception():
                data = answer.result()
                tally[f"answered {data[9:12].decode()}" if data else "closed"] += 1
        except OSError:
            tally["reset"] += 1
        finally:
            answer.cancel()
            stopping.cancel()
            writer.close()


async def _poster(url: str, stop: asyncio.Event, tally: Counter, files: list[bytes],
                  latencies: list[float]) -> None:
    """Post `files` as `file` parts of one request, again and again until `stop`."""
    parts = [("file", (f"x{i}.png", data)) for i, data in enumerate(files)]
    async with httpx.AsyncClient(base_url=url, timeout=120) as session:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = await session.post("/api/predict", files=parts)
                tally[f"answered {response.status_code}"] += 1
                latencies.append((time.perf_counter() - start) * 1000)
            except httpx.HTTPError as exc:
                tally[type(exc).__name__] += 1


async def _bursts(url: str, stop: asyncio.Event, tally: Counter, photo: bytes,
                  latencies: list[float], size: int) -> None:
    limits = httpx.Limits(max_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as session:
        async def one() -> None:
            start = time.perf_counter()
            try:
                response = await session.post("/api/predict", files={"file": ("a.jpg", photo)})
            except httpx.HTTPError as exc:
                tally[type(exc).__name__] += 1
                return
            retry = "" if response.status_code != 503 else (
                " with Retry-After" if "retry-after" in response.headers else " bare")
            tally[f"answered {response.status_code}{retry}"] += 1
            latencies.append((time.perf_counter() - start) * 1000)

        while not stop.is_set():
            await asyncio.gather(*[one() for _ in range(size)])
            try:
                await asyncio.wait_for(stop.wait(), 2)
            except TimeoutError:
                pass


def _attackers(name: str, url: str, stop: asyncio.Event, tally: Counter, photo: bytes,
               latencies: list[float], count: int) -> list[Awaitable]:
    if name in ("idle", "slowloris", "slow-body"):
        prefix, drip, interval = {"idle": (b"", b"", 1.0), "slowloris": (b"", SLOWLORIS_HEAD, 1.0),
                                  "slow-body": (SLOW_BODY_HEAD, bytes(2**20), 5.0)}[name]
        return [_socket_attacker(url, stop, tally, prefix, drip, interval)
                for _ in range(count)]
    if name == "burst":
        return [_bursts(url, stop, tally, photo, latencies, count)]
    if name == "thin-image":
        return [_poster(url, stop, tally, [_png(Image.new("RGB", (20_000, 1)))], latencies)
                for _ in range(4)]
    if name == "two-files":
        return [_poster(url, stop, tally, [photo, photo], latencies) for _ in range(4)]
    large = _png(Image.new("LA", (8_000, 8_000)))
    return [_poster(url, stop, tally, [large], latencies) for _ in range(2)]


async def run_attack(name: str, url: str, pid: int, photos: list[bytes], clients: int,
                     seconds: float, process_figures: Callable[[int], dict],
                     attackers: int = 200) -> dict:
    """Good clients beside attack `name` for `seconds`; the figures of both and the server's."""
    before = process_figures(pid)
    stop = asyncio.Event()
    attacker, attack_ms = Counter(), []
    attack = asyncio.gather(*_attackers(name, url, stop, attacker, photos[0], attack_ms,
                                        attackers))
    await asyncio.sleep(2)  # let the attack take hold first
    good, good_ms = Counter(), []
    await asyncio.gather(*[_poster_for(url, seconds, photos, seed, good, good_ms)
                           for seed in range(clients)])
    after = process_figures(pid)
    stop.set()
    await asyncio.wait_for(attack, 180)
    latencies = np.array(good_ms or [np.nan])
    return {
        "attackers": attackers if name not in ("thin-image", "large-image", "two-files") else None,
        "good_ok": good["answered 200"],
        "good_failed": sum(n for kind, n in good.items() if kind != "answered 200"),
        "good_failures": {kind: n for kind, n in good.items() if kind != "answered 200"},
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "attacker": dict(attacker),
        "attacker_p50_ms": round(float(np.median(attack_ms)), 1) if attack_ms else None,
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(after["VmHWM"] / 1024, 1),
    }


async def _poster_for(url: str, seconds: float, photos: list[bytes], seed: int, tally: Counter,
                      latencies: list[float]) -> None:
    """A good client: one real photo after another, for `seconds`."""
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as session:
        while time.monotonic() < deadline:
            photo = photos[int(rng.integers(len(photos)))]
            start = time.perf_counter()
            try:
                response = await session.post("/api/predict", files={"file": ("a.jpg", photo)})
                tally[f"answered {response.status_code}"] += 1
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
            except httpx.HTTPError as exc:
                tally[type(exc).__name__] += 1
