"""A phone's photo: HEIC against JPEG for the same 12-megapixel photo, decoded by petal's one
loader and sent through `petal serve`.

    .venv/bin/python benchmarks/phone_photos.py runs/notebook/transfer \\
        --json benchmarks/results/phone_photos.json

The photo: a flowers photo enlarged to 4032 x 3024 (an iPhone's 12 MP), with the EXIF
orientation a phone held upright writes, saved as JPEG (quality 90) and as HEIC (quality
80, the size an iPhone's is). Each figure is the median of REPEATS runs.
- decode: `load_image` in full, and as predict and the server call it (at least the model's
  resize size: a JPEG is decoded at a reduced scale, libjpeg's draft mode; HEIC has no such
  mode), each in a process of its own: its peak memory above what it held before decoding;
- request: POST /api/predict to `petal serve MODEL` on 127.0.0.1 (a real server, a real
  HTTP client), against a 640 x 480 JPEG of the same photo.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import FLOWERS, PETAL, record
from PIL import Image

REPEATS = 7
FLOWER = FLOWERS / "daisy" / "100080576_f52e8ee070_n.jpg"
SIDES = (4032, 3024)

# The peak is read from /proc (VmHWM), reset once the file is read: a process's ru_maxrss
# keeps the peak of the process it was forked from, across exec.
DECODE = """
import re, statistics, sys, time
from petal.data.image import load_image
def kib(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read())[1])
data, size = open(sys.argv[1], "rb").read(), int(sys.argv[2])
open("/proc/self/clear_refs", "w").write("5")
before = kib("VmRSS")
times = []
for _ in range(int(sys.argv[3])):
    started = time.perf_counter()
    image = load_image(data, min_size=size or None)
    times.append(time.perf_counter() - started)
print(statistics.median(times), (kib("VmHWM") - before) / 1024, *image.size)
"""


def photos(folder: Path) -> dict[str, Path]:
    import pillow_heif  # noqa: F401 - registers the HEIF writer

    exif = Image.Exif()
    exif[0x0112] = 6  # the phone was held upright
    big = Image.open(FLOWER).convert("RGB").resize(SIDES, Image.Resampling.BICUBIC)
    made = {"JPEG 12 MP": folder / "phone.jpg", "HEIC 12 MP": folder / "phone.heic",
            "JPEG 640 x 480": folder / "small.jpg"}
    big.save(made["JPEG 12 MP"], "JPEG", quality=90, exif=exif.tobytes())
    big.save(made["HEIC 12 MP"], "HEIF", quality=80, exif=exif.tobytes())
    big.resize((640, 480)).save(made["JPEG 640 x 480"], "JPEG", quality=90)
    return made


def decode(path: Path, size: int) -> dict:
    said = subprocess.run([sys.executable, "-c", DECODE, str(path), str(size), str(REPEATS)],
                          capture_output=True, text=True, check=True).stdout.split()
    return {"median_s": round(float(said[0]), 4), "peak_mib": round(float(said[1]), 1),
            "decoded": [int(said[2]), int(said[3])]}


def serve(model: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([PETAL, "serve", model, "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if found := re.search(r"at (http://127\.0\.0\.1:\d+)", line):
            return process, found[1]
    raise SystemExit("petal serve did not start")


def requests(url: str, path: Path) -> dict:
    data = path.read_bytes()
    with httpx.Client(timeout=60) as client:
        client.post(f"{url}/api/predict", files={"file": (path.name, data)})  # warm
        times, answer = [], None
        for _ in range(REPEATS):
            started = time.perf_counter()
            answer = client.post(f"{url}/api/predict", files={"file": (path.name, data)})
            times.append(time.perf_counter() - started)
    answer.raise_for_status()
    top = answer.json()["predictions"][0]["top_k"][0]
    return {"median_ms": round(1000 * statistics.median(times), 1), "bytes": len(data),
            "label": top["label"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a run or model folder to serve")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = Path("/tmp/petal-phone-photos")
    folder.mkdir(exist_ok=True)
    made = photos(folder)
    size = json.loads((Path(args.model) / "model" / "model.json").read_text()
                      )["input"]["resize_size"]
    figures: dict = {"photo": {name: path.stat().st_size for name, path in made.items()},
                     "resize_size": size, "decode": {}, "request": {}}
    for name in ("JPEG 12 MP", "HEIC 12 MP"):
        figures["decode"][name] = {"full": decode(made[name], 0),
                                   "for the model": decode(made[name], size)}
        print(f"decode {name:11} ({made[name].stat().st_size / 2**20:.1f} MiB): "
              + "; ".join(f"{how} {d['median_s'] * 1000:.0f} ms, peak {d['peak_mib']} MiB, "
                          f"{d['decoded'][0]} x {d['decoded'][1]}"
                          for how, d in figures["decode"][name].items()))
    process, url = serve(args.model)
    try:
        for name, path in made.items():
            figures["request"][name] = requests(url, path)
            print(f"request {name:15}: {figures['request'][name]['median_ms']:.0f} ms "
                  f"({figures['request'][name]['label']})")
    finally:
        process.terminate()
        process.wait(30)
    if args.json:
        record(args.json, figures, about="a 12-megapixel phone photo as HEIC and as JPEG: "
               "decode time and memory, and its request through petal serve")


if __name__ == "__main__":
    sys.exit(main())
