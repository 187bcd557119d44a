"""The flowers set as WebDataset shards: packing it, and `petal predict --out` from the
folder, from the shards on disk and from the shards over HTTP.

    .venv/bin/python benchmarks/shards.py runs/notebook/transfer \\
        --json benchmarks/results/shards.json

`petal data pack` of the whole set (shards of 64 MB), then `petal predict MODEL SOURCE --out
FILE` for each source, each a process of its own, timed from start to exit; the HTTP server
is Python's http.server on 127.0.0.1 in a thread of this process. The three files' rows are
compared photo by photo (by content hash).
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import http.server
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import FLOWERS, PETAL, record


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def answers(path: Path, data: Path) -> dict[str, str]:
    """Each photo's top label, by content hash (a folder's rows name files, a shard's keys)."""
    found = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["rank"] != "1":
                continue
            key = (row["path"].rsplit("#", 1)[1] if "#" in row["path"]
                   else hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest())
            found[key] = row["label"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        pack_s = timed([PETAL, "data", "pack", str(FLOWERS), "--out", str(root / "shards"),
                        "--shard-mb", "64", "--no-progress"])
        shards = sorted((root / "shards").glob("*.tar"))
        size = sum(s.stat().st_size for s in shards)
        pattern = f"shard-{{000000..{len(shards) - 1:06d}}}.tar"
        handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                    directory=str(root / "shards"))
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sources = {"folder": str(FLOWERS), "shards on disk": str(root / "shards" / pattern),
                   "shards over HTTP": f"http://127.0.0.1:{server.server_address[1]}/{pattern}"}
        figures: dict = {"pack_s": round(pack_s, 1), "shards": len(shards),
                         "shard_bytes": size, "predict": {}}
        results = {}
        for name, source in sources.items():
            out = root / f"{name.replace(' ', '-')}.csv"
            seconds = timed([PETAL, "predict", args.model, source, "--out", str(out),
                             "--no-progress"])
            results[name] = answers(out, FLOWERS)
            figures["predict"][name] = {"seconds": round(seconds, 1),
                                        "photos": len(results[name]),
                                        "photos_per_s": round(len(results[name]) / seconds, 1)}
            print(f"{name:16}: {seconds:.1f} s, {len(results[name])} photos", flush=True)
        server.shutdown()
    reference = results["folder"]
    figures["same_answers"] = {name: found == reference for name, found in results.items()}
    print(f"packed in {pack_s:.1f} s: {len(shards)} shards, {size / 2**20:.0f} MiB; same "
          f"answers: {figures['same_answers']}")
    if args.json:
        record(args.json, figures, about="the flowers set packed into WebDataset shards, and "
               "predict from the folder, the shards on disk and the shards over HTTP")


if __name__ == "__main__":
    sys.exit(main())
