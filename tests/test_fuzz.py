"""Fuzzed image files: a few hundred seeded mutations of real encodings, through the loader,
`petal data check` and `petal predict`. No traceback, every file predicted or reported, and
memory bounded whatever the bytes claim (dimension fields are among the mutations)."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import pattern
from petal.data.check import check_folder

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
N_FILES = 300
PEAK_EXTRA_MB = 1024  # the size policy's promise: no file costs more than ~1 GB


def _encoded(seed: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    pattern(seed, size=(64, 48)).save(buffer, fmt)
    return buffer.getvalue()


def _set_dimensions(data: bytearray, width: int, height: int) -> None:
    """Rewrite the size a PNG (IHDR, CRC fixed) or JPEG (SOF0) header claims."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    elif (sof := data.find(b"\xff\xc0")) > 0:
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random mutations: bit flips, overwritten or repeated spans, a cut, or
    a header claiming another size (thin strips, huge areas, zero sides)."""
    out = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(5)
        at = int(rng.integers(len(out)))
        if kind == 0:
            for _ in range(rng.integers(1, 20)):
                i = int(rng.integers(len(out)))
                out[i] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            out[at:at + 16] = rng.bytes(16)
        elif kind == 2:
            out[at:at] = out[at:at + int(rng.integers(1, 200))]
        elif kind == 3:
            del out[max(1, at):]
        else:
            sides = rng.choice([0, 1, 2, 64, 5_000, 20_000, 60_000, 65_535], size=2)
            _set_dimensions(out, int(sides[0]), int(sides[1]))
    return bytes(out)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_FILES mutated files in two class folders, named by format, seeded."""
    root = tmp_path_factory.mktemp("fuzz") / "data"
    rng = np.random.default_rng(2026)
    for i in range(N_FILES):
        fmt = FORMATS[i % len(FORMATS)]
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.{fmt.lower()}").write_bytes(
            mutate(_encoded(int(rng.integers(1000)), fmt), rng))
    return root


def test_scan_accounts_for_every_file(fuzzed: Path) -> None:
    report = check_folder(fuzzed, progress=False)
    assert len(report.index.images) + len(report.index.rejected) == N_FILES
    assert report.index.rejected  # the mutations do break files


def _peak_mb(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run `command`; its peak resident memory in MB, measured by a parent of its own."""
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], "
               "capture_output=True, text=True); sys.stdout.write(done.stdout); "
               "sys.stderr.write(done.stderr); print(resource.getrusage("
               "resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True,
                          text=True, timeout=600)
    *rest, peak = done.stderr.rstrip("\n").split("\n")
    done.stderr = "\n".join(rest)
    return done, int(peak) / 1024


@pytest.fixture(scope="module")
def model_at_256(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ResNet9 fed 224 px crops of 256 px squares (its pooling takes any size): the
    resize to 256 px is where a thin strip once cost gigabytes."""
    folder = tmp_path_factory.mktemp("at256") / "model"
    shutil.copytree(tiny_run / "model", folder)
    card = json.loads((folder / "model.json").read_text())
    card["input"].update(size=224, crop_pct=0.875)
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_predict_reports_or_predicts_every_file_in_bounded_memory(fuzzed: Path,
                                                                  model_at_256: Path) -> None:
    petal = str(Path(sys.executable).with_name("petal"))
    one = next(fuzzed.rglob("*.png"))
    _, baseline = _peak_mb([petal, "predict", str(model_at_256), str(one), "--json"])
    done, peak = _peak_mb([petal, "predict", str(model_at_256), str(fuzzed), "--json"])
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    predicted = json.loads(done.stdout)
    skipped = re.findall(r"^skipped (\S+): ", done.stderr, re.M)
    assert len(predicted) + len(skipped) == N_FILES
    assert {p["source"] for p in predicted}.isdisjoint(skipped)
    unknown = sum(p["unknown"] for p in predicted)
    assert (f"Predicted {len(predicted)} image(s) ({unknown} unknown), skipped {len(skipped)}"
            in done.stderr)
    assert peak - baseline < PEAK_EXTRA_MB, (peak, baseline)
