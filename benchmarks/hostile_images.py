"""What the worst files cost `petal predict`: peak memory and CPU per file, against a photo.

    .venv/bin/python benchmarks/hostile_images.py runs/my-run \\
        --json benchmarks/results/hostile_images.json

Makes each file in a temporary folder: the largest image the size policy admits
(64 megapixels) in every pixel mode, strips the policy refuses (a 20000 x 1 PNG, a
60000 x 1 JPEG), a decompression bomb's header, a file over the size limit (sparse), a
named pipe, a symlink loop and a truncated JPEG. Each runs as `petal predict MODEL FILE
--json` in a process of its own; its peak resident memory and CPU time, less those of the
same command on one small real photo, are the file's cost. Prints one row per file and
exits 1 if any costs over 1 GiB or 2 CPU seconds (the targets of issue 21).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from machine import machine
from PIL import Image

FLOWERS = Path(__file__).resolve().parents[2] / "shared/data/flowers"
FLOWER = FLOWERS / "daisy" / "100080576_f52e8ee070_n.jpg"
LIMIT_MIB, LIMIT_CPU_S = 1024, 2.0
SIDE = 8000  # 8000 x 8000 = the 64-megapixel limit


def _claims(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height."""
    buffer = io.BytesIO()
    Image.new("1", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def make_files(folder: Path) -> dict[str, Path]:
    files = {}
    for mode, fmt in [("RGB", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"),
                      ("LA", "PNG"), ("P", "PNG"), ("L", "PNG"), ("1", "PNG"),
                      ("I;16", "PNG"), ("I", "TIFF")]:
        path = folder / f"64mp-{mode.replace(';', '')}.{fmt.lower()}"
        Image.new(mode, (SIDE, SIDE)).save(path, fmt, **({"transparency": 0} if mode == "P"
                                                        else {}))
        files[f"64 MP {mode} {fmt}"] = path
    Image.new("RGB", (20_000, 1)).save(folder / "strip.png")
    files["20000 x 1 PNG"] = folder / "strip.png"
    Image.new("RGB", (60_000, 1)).save(folder / "strip.jpg")
    files["60000 x 1 JPEG"] = folder / "strip.jpg"
    (folder / "bomb.png").write_bytes(_claims(50_000, 50_000))
    files["PNG claiming 50000 x 50000"] = folder / "bomb.png"
    with (folder / "huge.jpg").open("wb") as handle:
        handle.truncate(300 * 2**20)  # sparse
    files["300 MiB file"] = folder / "huge.jpg"
    os.mkfifo(folder / "pipe.jpg")
    files["named pipe"] = folder / "pipe.jpg"
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    files["symlink loop"] = folder / "loop.jpg"
    (folder / "cut.jpg").write_bytes(FLOWER.read_bytes()[:2000])
    files["truncated JPEG"] = folder / "cut.jpg"
    return files


MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], "
           "capture_output=True, text=True, timeout=300); u = resource.getrusage("
           "resource.RUSAGE_CHILDREN); print(u.ru_maxrss, u.ru_utime + u.ru_stime, "
           "done.returncode); print(done.stdout + done.stderr)")


def cost(model: str, path: Path) -> dict:
    """Peak RSS (MiB), CPU seconds, exit status and last output line of one predict."""
    petal = str(Path(sys.executable).with_name("petal"))
    done = subprocess.run([sys.executable, "-c", MEASURE, petal, "predict", model, str(path),
                           "--json"], capture_output=True, text=True, timeout=600)
    first, _, output = done.stdout.partition("\n")
    peak_kib, cpu_s, status = first.split()
    lines = [line for line in output.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith(("skipped", "error"))), "predicted")
    return {"peak_mib": int(peak_kib) / 1024, "cpu_s": float(cpu_s), "exit": int(status),
            "said": said.replace(str(path), "FILE")[:110]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a run or model folder")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    baseline = cost(args.model, FLOWER)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, path in make_files(Path(folder)).items():
            figures = cost(args.model, path)
            figures["extra_mib"] = round(figures["peak_mib"] - baseline["peak_mib"])
            figures["extra_cpu_s"] = round(figures["cpu_s"] - baseline["cpu_s"], 2)
            rows[name] = figures
            print(f"{name:28} {figures['extra_mib']:>6} MiB {figures['extra_cpu_s']:>6.2f} s "
                  f"exit {figures['exit']}  {figures['said']}", flush=True)
    print(f"baseline (one photo): {baseline['peak_mib']:.0f} MiB, {baseline['cpu_s']:.2f} s CPU")
    over = [name for name, row in rows.items()
            if row["extra_mib"] > LIMIT_MIB or row["extra_cpu_s"] > LIMIT_CPU_S]
    print(f"over {LIMIT_MIB} MiB or {LIMIT_CPU_S} s: {', '.join(over) or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "baseline": baseline,
                                               "files": rows, "machine": machine()}, indent=2)
                                   + "\n")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
