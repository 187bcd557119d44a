"""Load test for `petal serve`: concurrent clients on loopback for a fixed time, good and bad.

    .venv/bin/python benchmarks/serve_load.py runs/my-run --clients 8 --seconds 20 --json out.json
    .venv/bin/python benchmarks/serve_load.py --url http://127.0.0.1:8000 --pid 1234
    .venv/bin/python benchmarks/serve_load.py runs/my-run --attack all --json attack.json

Starts `petal serve MODEL... --port 0` itself (or uses --url, and --pid for its memory),
then runs --clients asyncio+httpx clients (and --explain-clients asking for explanations,
whose latencies are kept apart) until --seconds have passed. Each request is
good (a real flower photo) or, with probability --bad-fraction, bad: a non-image (expects
415), an upload twice the size limit (413) or a form without the file part (422).
Prints throughput, p50/p95/p99 latency of good requests, good requests that failed (should be
0), bad requests answered with the expected 4xx, and the server's resident memory
(/proc/PID/status) before and after the load, plus its peak.

With --attack, the --clients good clients run beside one attack for --seconds, each attack
against a fresh server (so its peak memory is its own), and the figures are per attack
(see attacks.py): good requests served and failed, their p95 latency, what the attacker's
requests were answered, and the server's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from attacks import ATTACKS, run_attack
from common import FLOWERS, record

EXPECTED = {"not_image": 415, "oversized": 413, "missing_part": 422}


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # good requests answered 200
    explain_ms: list[float] = field(default_factory=list)  # --explain-clients' answered 200
    batches: list[int] = field(default_factory=list)  # forward-pass sizes the server reported
    good_failed: Counter = field(default_factory=Counter)  # status or exception name
    bad_expected: Counter = field(default_factory=Counter)
    bad_unexpected: Counter = field(default_factory=Counter)
    client_cpu_s: float = 0.0  # CPU time of this load generator


def process_figures(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) in KiB, and CPU seconds used so far."""
    text = Path(f"/proc/{pid}/status").read_text()
    figures: dict[str, float] = {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M)[1])
                                 for key in ("VmRSS", "VmHWM")}
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    figures["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return figures


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`petal serve` on a free port, its output (one access-log line a request) to a file."""
    command = [sys.executable, "-c", "import sys; from petal.cli import main; sys.exit(main())",
               "serve", *args.models, "--port", "0",
               *(["--engine", args.engine] if args.engine else []),
               "--device", args.device, "--max-batch", str(args.max_batch),
               "--batch-wait-ms", str(args.batch_wait_ms)]
    log = Path(tempfile.mkstemp(prefix="petal-serve-", suffix=".log")[1])
    with log.open("w") as handle:
        server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    while server.poll() is None:
        if match := re.search(r" at (http://\S+)", log.read_text()):
            return server, match[1]
        time.sleep(0.2)
    raise SystemExit(f"the server did not start (log: {log}): {' '.join(command)}")


async def wait_ready(url: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url) as session:
        while True:
            try:
                if (await session.get("/healthz")).status_code == 200:
                    return (await session.get("/api/models")).json()
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


def load_photos(folder: Path, count: int) -> list[bytes]:
    photos = sorted(folder.rglob("*.jpg"))
    if not photos:
        raise SystemExit(f"no .jpg photos under {folder}: pass --photos")
    return [p.read_bytes() for p in photos[:: max(1, len(photos) // count)][:count]]


async def client(url: str, deadline: float, photos: list[bytes], bad: dict[str, dict],
                 bad_fraction: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as session:
        while time.monotonic() < deadline:
            kind = rng.choice(list(bad)) if rng.random() < bad_fraction else "good"
            request = bad.get(kind) or {"files": {"file": ("photo.jpg", rng.choice(photos))}}
            start = time.perf_counter()
            try:
                response = await session.post("/api/predict", **request)
            except httpx.HTTPError as exc:
                (tally.good_failed if kind == "good" else tally.bad_unexpected)[
                    type(exc).__name__] += 1
                continue
            if kind == "good" and response.status_code == 200:
                tally.latencies_ms.append((time.perf_counter() - start) * 1000)
                tally.batches += [p["batch"] for p in response.json()["predictions"]]
            elif kind == "good":
                tally.good_failed[str(response.status_code)] += 1
            elif response.status_code == EXPECTED[kind]:
                tally.bad_expected[kind] += 1
            else:
                tally.bad_unexpected[f"{kind}:{response.status_code}"] += 1


async def explaining_client(url: str, deadline: float, photos: list[bytes], seed: int,
                            tally: Tally) -> None:
    """Good photos with ?explain=true, one after another; their latencies kept apart."""
    rng = random.Random(1000 + seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as session:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            response = await session.post("/api/predict", params={"explain": "true"},
                                          files={"file": ("photo.jpg", rng.choice(photos))})
            if response.status_code == 200:
                tally.explain_ms.append((time.perf_counter() - start) * 1000)
            else:
                tally.good_failed[f"explain:{response.status_code}"] += 1


async def run_load(url: str, args: argparse.Namespace, max_upload: int) -> tuple[Tally, float]:
    photos = load_photos(Path(args.photos), args.photo_count)
    bad = {"not_image": {"files": {"file": ("notes.txt", b"not an image\n" * 50, "text/plain")}},
           "oversized": {"files": {"file": ("huge.jpg", bytes(2 * max_upload))}},
           "missing_part": {"data": {"comment": "no file here"}}}
    tally = Tally()
    start = time.monotonic()
    deadline = start + args.seconds
    clients = [client(url, deadline, photos, bad, args.bad_fraction, seed, tally)
               for seed in range(args.clients)]
    clients += [explaining_client(url, deadline, photos, seed, tally)
                for seed in range(args.explain_clients)]
    await asyncio.wait_for(asyncio.gather(*clients), args.seconds + 120)
    return tally, time.monotonic() - start


def summarise(tally: Tally, seconds: float, before: dict, after: dict, args: argparse.Namespace
              ) -> dict:
    latencies = np.array(tally.latencies_ms or [np.nan])
    return {
        "clients": args.clients, "seconds": round(seconds, 1), "models": args.models,
        "engine": args.engine or "default", "device": args.device, "max_batch": args.max_batch,
        "batch_wait_ms": args.batch_wait_ms,
        "good_ok": len(tally.latencies_ms),
        "good_per_s": round(len(tally.latencies_ms) / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "mean_batch": round(float(np.mean(tally.batches)), 2) if tally.batches else None,
        "explain_clients": args.explain_clients, "explain_ok": len(tally.explain_ms),
        "explain_p95_ms": round(float(np.percentile(tally.explain_ms, 95)), 1)
        if tally.explain_ms else None,
        "good_failed": sum(tally.good_failed.values()), "good_failures": dict(tally.good_failed),
        "bad_expected": dict(tally.bad_expected), "bad_unexpected": dict(tally.bad_unexpected),
        "rss_before_mib": round(before["VmRSS"] / 1024, 1) if before else None,
        "rss_after_mib": round(after["VmRSS"] / 1024, 1) if after else None,
        "rss_peak_mib": round(after["VmHWM"] / 1024, 1) if after else None,
        "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 1) if after else None,
        "client_cpu_s": round(tally.client_cpu_s, 1),
    }


async def attack_main(args: argparse.Namespace) -> dict:
    names = list(ATTACKS) if args.attack == "all" else [args.attack]
    photos = load_photos(Path(args.photos), args.photo_count)
    results = {}
    for name in names:
        server, url = start_server(args)
        try:
            await wait_ready(url)
            results[name] = await run_attack(name, url, server.pid, photos, args.clients,
                                             args.seconds, process_figures, args.attackers)
        finally:
            server.terminate()
            server.wait(30)
        print(format_attack(name, results[name]), flush=True)
    return {"attacks": results, "clients": args.clients, "seconds": args.seconds,
            "models": args.models, "engine": args.engine or "default"}


def format_attack(name: str, figures: dict) -> str:
    return (f"{name}: {figures['good_ok']} good requests answered, {figures['good_failed']} "
            f"failed {figures['good_failures'] or ''}, p95 {figures['p95_ms']} ms; attacker: "
            f"{figures['attacker']}; server peak RSS {figures['rss_peak_mib']} MiB "
            f"({figures['rss_before_mib']} before)")


async def main(args: argparse.Namespace) -> dict:
    server, url = start_server(args) if not args.url else (None, args.url)
    pid = server.pid if server else args.pid
    try:
        info = await wait_ready(url)
        before = process_figures(pid) if pid else {}
        client_cpu = time.process_time()
        tally, seconds = await run_load(url, args, info["max_upload_bytes"])
        after = process_figures(pid) if pid else {}
        tally.client_cpu_s = time.process_time() - client_cpu
    finally:
        if server:
            server.terminate()
            server.wait(30)
    return summarise(tally, seconds, before, after, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="what `petal serve` gets (unless --url)")
    parser.add_argument("--url", help="load an already running server instead")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for RSS")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--explain-clients", type=int, default=0,
                        help="more clients asking ?explain=true, beside --clients; the "
                        "latency figures stay those of the plain requests")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--bad-fraction", type=float, default=0.2)
    parser.add_argument("--photos", default=str(FLOWERS), help="folder of .jpg photos")
    parser.add_argument("--photo-count", type=int, default=50)
    parser.add_argument("--engine", choices=("torch", "onnx"),
                        help="petal serve's --engine (default: petal's own choice)")
    parser.add_argument("--device", default="auto", help="petal serve's --device")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=0.0)
    parser.add_argument("--attack", choices=(*ATTACKS, "all"),
                        help="run the good clients beside an attack (see attacks.py)")
    parser.add_argument("--attackers", type=int, default=200,
                        help="sockets or simultaneous requests of an --attack (default 200)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if not args.models and not args.url:
        parser.error("pass MODEL... to start a server, or --url")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.attack:
        figures = asyncio.run(attack_main(arguments))
        if arguments.json:
            record(arguments.json, figures, "`petal serve` under attack beside good clients: "
                   "answers, latencies, memory and CPU")
        sys.exit(1 if any(a["good_failed"] for a in figures["attacks"].values()) else 0)
    figures = asyncio.run(main(arguments))
    print(f"{figures['clients']} clients, {figures['seconds']} s: "
          f"{figures['good_per_s']} good requests/s, p50 {figures['p50_ms']} ms, "
          f"p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms, "
          f"mean forward-pass batch {figures['mean_batch']}")
    if figures["explain_clients"]:
        print(f"beside them {figures['explain_clients']} clients asking ?explain=true: "
              f"{figures['explain_ok']} answered, p95 {figures['explain_p95_ms']} ms")
    print(f"good requests: {figures['good_ok']} answered, {figures['good_failed']} failed "
          f"{figures['good_failures'] or ''}")
    print(f"bad requests answered as expected: {figures['bad_expected']}; "
          f"otherwise: {figures['bad_unexpected'] or 'none'}")
    print(f"server RSS: {figures['rss_before_mib']} MiB before, {figures['rss_after_mib']} MiB "
          f"after, peak {figures['rss_peak_mib']} MiB; CPU: server {figures['server_cpu_s']} s, "
          f"load generator {figures['client_cpu_s']} s")
    if arguments.json:
        record(arguments.json, figures, "`petal serve` under load: requests/s, latency "
               "percentiles, forward-pass batch, memory and CPU")
    sys.exit(1 if figures["good_failed"] or figures["bad_unexpected"] else 0)
