"""What the worst input costs petal: peak memory and CPU per file, against a harmless one.

    .venv/bin/python benchmarks/hostile_images.py runs/my-run \\
        --json benchmarks/results/hostile_images.json

Each case runs as a petal command in a process of its own; its peak resident memory and CPU
time, less those of the same command on harmless input, are the case's cost.

- images (`petal predict MODEL FILE --json`, against one small real photo): the largest
  image the size policy admits (64 megapixels) in every pixel mode, strips the policy
  refuses (a 20000 x 1 PNG, a 60000 x 1 JPEG), a decompression bomb's header, a file over the
  size limit (sparse), a named pipe, a symlink loop and a truncated JPEG;
- review files (`petal data split DATA --review FILE`, DATA 20 flowers a class linked into a
  temporary folder, against no review file): 63 MB of lines of 1000 empty columns, 63 MB of
  valid rows (the largest file admitted), a 1 GiB file (sparse), a named pipe, bytes that
  are not UTF-8, a path out of the folder, decisions that relabel every photo to one class;
- novelty files (`petal predict` of one photo with a copy of MODEL, against the intact copy):
  NaN reference features, NaN validation scores, k = 100000 in model.json, a 3-row reference;
- HEIC (`petal predict MODEL FILE --json`, against the same small photo): a 12-megapixel
  HEIC (a phone's photo), a 64-megapixel one (the largest admitted), one whose header claims
  50000 x 50000 and one holding 300 images;
- labels files (`petal data check DATA --labels FILE`, DATA the same 20 flowers a class as
  one flat folder, against its plain labels file): a million rows of missing photos, cells
  that are formulas, `../` and absolute paths, NUL bytes, a BOM with CRLF line ends, 129 MiB
  (sparse, over the limit);
- CSV (`petal predict --csv` on a photo filed under a folder named `=cmd|' -C calc'!A0`):
  whether a cell of the output starts with a formula character;
- writers: two `petal train` started together into one --out, and `--resume` of a run
  while it trains: which ones are refused, and with what;
- paths (each checked for what it must leave as it was): a symbolic link, a named pipe and a
  folder as `--out FILE`, an `--out` inside the photo folder, `--resume` with options it
  cannot honour, a first `petal predict` (its export in a child process) run from a folder
  holding a `petal/` package, `petal label` with a model card whose class is `../../escaped`,
  and review and label files whose photo names hold a carriage return.

Prints one row per case and exits 1 if any case costs over 1 GiB, or over 2 CPU seconds
(the targets of issue 21) but for a review or labels file petal admits, whose parsing grows with its
size up to the 64 MiB limit, or if any case ends otherwise than it should (exit 0 where the
input is usable, an error line and exit 1 where not, no formula cell in the CSV).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from common import FLOWERS, PETAL, linked, record
from PIL import Image
from safetensors.numpy import load_file, save_file

FLOWER = FLOWERS / "daisy" / "100080576_f52e8ee070_n.jpg"
LIMIT_MIB, LIMIT_CPU_S = 1024, 2.0
SIDE = 8000  # 8000 x 8000 = the 64-megapixel limit
REVIEW_BYTES = 63 * 10**6
FORMULA = "=cmd|' -C calc'!A0"


def _claims(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height."""
    buffer = io.BytesIO()
    Image.new("1", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def image_files(folder: Path) -> dict[str, Path]:
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


def _heic(image: Image.Image, path: Path, **options) -> Path:
    import pillow_heif  # noqa: F401 - registers the HEIF writer with Pillow

    image.save(path, format="HEIF", **options)
    return path


def heic_files(folder: Path) -> dict[str, tuple[Path, int]]:
    """name -> (HEIC file, the exit status `petal predict` should end with)."""
    photo = Image.open(FLOWER).convert("RGB")
    files = {"12 MP HEIC": (_heic(photo.resize((4032, 3024), Image.Resampling.BICUBIC),
                                  folder / "phone.heic", quality=80), 0),
             "64 MP HEIC": (_heic(photo.resize((SIDE, SIDE), Image.Resampling.BICUBIC),
                                  folder / "64mp.heic", quality=50), 0)}
    small = _heic(photo.resize((64, 64)), folder / "small.heic")
    data = bytearray(small.read_bytes())
    at = data.find(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", 50_000, 50_000)
    (folder / "bomb.heic").write_bytes(bytes(data))
    files["HEIC claiming 50000 x 50000"] = (folder / "bomb.heic", 1)
    frames = [photo.resize((64, 64)).rotate(i) for i in range(300)]
    frames[0].save(folder / "many.heic", format="HEIF", save_all=True,
                   append_images=frames[1:])
    files["HEIC of 300 images"] = (folder / "many.heic", 0)
    return files


def labels_files(folder: Path, data: Path) -> dict[str, tuple[Path, int]]:
    """name -> (labels file for flat folder `data`, the exit `petal data check` ends with)."""
    photos = sorted(p.name for p in data.iterdir())
    plain = "".join(f"{name},{name.split('-')[0]}\n" for name in photos)
    files: dict[str, tuple[Path, int]] = {}

    def write(name: str, key: str, text: str | bytes, status: int) -> None:
        path = folder / f"{name}.csv"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        files[key] = (path, status)

    write("plain", "plain", "path,label\n" + plain, 0)
    write("million", "a million rows of missing photos", "path,label\n" + "".join(
        f"gone/{i}.jpg,daisy\n" for i in range(10**6)) + plain, 0)
    # their label's every photo is missing: the class is refused, as an empty class folder is
    write("formulas", "formula cells", "path,label\n" + plain + "".join(
        f"=HYPERLINK(\"http://x/{i}\"),{FORMULA}\n" for i in range(100)), 1)
    write("paths", "../ and absolute paths", "path,label\n" + plain + "".join(
        f"../../{i}.jpg,daisy\n/etc/passwd,rose\n" for i in range(100)), 0)
    write("nul", "NUL bytes", b"path,label\n" + plain.encode() + b"a\x00b.jpg,daisy\n" * 100, 0)
    write("bom", "a BOM and CRLF", "\ufeffpath,label\r\n" + plain.replace("\n", "\r\n"), 0)
    with (folder / "huge.csv").open("wb") as handle:
        handle.truncate(129 * 2**20)  # sparse
    files["129 MiB (over the limit)"] = (folder / "huge.csv", 1)
    return files


def review_files(folder: Path, data: Path) -> dict[str, tuple[Path, int]]:
    """name -> (review file, the exit status `petal data split --review` should end with)."""
    photos = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*"))
    files: dict[str, tuple[Path, int]] = {}

    def write(name: str, key: str, text: str | bytes, status: int) -> None:
        path = folder / f"{name}.csv"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        files[key] = (path, status)

    wide_line = photos[0] + ",keep" + "," * 1000 + "\n"
    write("wide", "63 MB of lines of 1000 empty columns",
          "path,action" + "," * 1000 + "\n" + wide_line * (REVIEW_BYTES // len(wide_line)), 1)
    rows = "".join(f"{p},keep,,,,,\n" for p in photos)
    write("long", "63 MB of valid rows", "path,action,a,b,c,d,e\n"
          + rows * (REVIEW_BYTES // len(rows)), 0)
    with (folder / "huge.csv").open("wb") as handle:
        handle.truncate(2**30)  # sparse
    files["1 GiB file"] = (folder / "huge.csv", 1)
    os.mkfifo(folder / "pipe.csv")
    files["named pipe"] = (folder / "pipe.csv", 1)
    write("binary", "not UTF-8", b"path,action\n\xff\xfe\x00,exclude\n", 1)
    write("outside", "a path out of the folder", "path,action\n../../etc/passwd,exclude\n", 1)
    write("one-class", "every photo relabelled to one class", "path,action,label\n" + "".join(
        f"{p},relabel,daisy\n" for p in photos), 1)
    return files


def crafted_models(folder: Path, model: Path) -> dict[str, Path]:
    """Copies of model folder `model`, each with its novelty score crafted one way."""
    models = {}
    for name in ("intact", "NaN reference", "NaN validation scores", "k = 100000",
                 "3-row reference"):
        copy = folder / name.replace(" ", "_")
        shutil.copytree(model, copy)
        scores, card_path = copy / "novelty.safetensors", copy / "model.json"
        tensors, card = load_file(str(scores)), json.loads(card_path.read_text())
        if name == "NaN reference":
            tensors["reference"][0, 0] = np.nan
        elif name == "NaN validation scores":
            tensors["val_scores"][:] = np.nan
        elif name == "k = 100000":
            card["novelty"]["k"] = 100_000
        elif name == "3-row reference":
            tensors["reference"] = tensors["reference"][:3]
        save_file(tensors, str(scores))
        card_path.write_text(json.dumps(card))
        models[name] = copy
    return models


MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], "
           "capture_output=True, text=True, timeout=300); u = resource.getrusage("
           "resource.RUSAGE_CHILDREN); print(u.ru_maxrss, u.ru_utime + u.ru_stime, "
           "done.returncode); print(done.stdout + done.stderr)")


def cost(*args: str, hide: str = "") -> dict:
    """Peak RSS (MiB), CPU seconds, exit status and the error or skip line of one petal
    command, `hide` (a path) written as FILE in it."""
    done = subprocess.run([sys.executable, "-c", MEASURE, PETAL, *args], capture_output=True,
                          text=True, timeout=600)
    first, _, output = done.stdout.partition("\n")
    peak_kib, cpu_s, status = first.split()
    lines = [line for line in output.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith(("skipped", "error"))), "done")
    return {"peak_mib": int(peak_kib) / 1024, "cpu_s": float(cpu_s), "exit": int(status),
            "said": (said.replace(hide, "FILE") if hide else said)[:110], "output": output}


def measured(name: str, figures: dict, baseline: dict, expected_exit: int) -> dict:
    """The case's figures less the baseline's, printed as a row."""
    row = {key: figures[key] for key in ("peak_mib", "cpu_s", "exit", "said")}
    row["extra_mib"] = round(figures["peak_mib"] - baseline["peak_mib"])
    row["extra_cpu_s"] = round(figures["cpu_s"] - baseline["cpu_s"], 2)
    row["as_expected"] = figures["exit"] == expected_exit
    print(f"  {name:36} {row['extra_mib']:>6} MiB {row['extra_cpu_s']:>6.2f} s "
          f"exit {row['exit']}{'' if row['as_expected'] else ' (UNEXPECTED)'}  {row['said']}",
          flush=True)
    return row


def images_section(model: str, folder: Path) -> dict:
    print(f"images: petal predict {model} FILE --json")
    baseline = cost("predict", model, str(FLOWER), "--json")
    rows = {name: measured(name, cost("predict", model, str(path), "--json", hide=str(path)),
                           baseline, 0 if name.startswith("64 MP") else 1)
            for name, path in image_files(folder).items()}
    return {"baseline": _plain(baseline), "cases": rows}


def heic_section(model: str, folder: Path) -> dict:
    print(f"HEIC: petal predict {model} FILE --json")
    baseline = cost("predict", model, str(FLOWER), "--json")
    rows = {name: measured(name, cost("predict", model, str(path), "--json", hide=str(path)),
                           baseline, status)
            for name, (path, status) in heic_files(folder).items()}
    return {"baseline": _plain(baseline), "cases": rows}


def labels_section(folder: Path) -> dict:
    data = folder / "flat"
    data.mkdir()
    for photo in sorted(linked(FLOWERS, folder / "data", per_class=20).glob("*/*")):
        (data / f"{photo.parent.name}-{photo.name}").symlink_to(photo.resolve())
    print(f"labels files: petal data check DATA --labels FILE ({len(list(data.iterdir()))} "
          "photos in one folder)")
    files = labels_files(folder, data)
    check = ["data", "check", str(data), "--no-progress", "--labels"]
    baseline = cost(*check, str(files.pop("plain")[0]))
    rows = {name: measured(name, cost(*check, str(path), hide=str(path)), baseline, status)
            for name, (path, status) in files.items()}
    return {"baseline": _plain(baseline), "cases": rows}


def review_section(folder: Path) -> dict:
    data = linked(FLOWERS, folder / "data", per_class=20)
    print(f"review files: petal data split DATA --review FILE ({sum(1 for _ in data.glob('*/*'))}"
          " photos)")
    split = ["data", "split", str(data), "--out", str(folder / "split.json")]
    baseline = cost(*split)
    rows = {name: measured(name, cost(*split, "--review", str(path), hide=str(path)), baseline,
                           status)
            for name, (path, status) in review_files(folder, data).items()}
    return {"baseline": _plain(baseline), "cases": rows}


def novelty_section(model: Path, folder: Path) -> dict:
    print("novelty files: petal predict MODEL_COPY PHOTO --json")
    models = crafted_models(folder, model)
    baseline = cost("predict", str(models.pop("intact")), str(FLOWER), "--json")
    rows = {name: measured(name, cost("predict", str(copy), str(FLOWER), "--json",
                                      hide=str(copy)), baseline, 1)
            for name, copy in models.items()}
    return {"baseline": _plain(baseline), "cases": rows}


def csv_section(model: str, folder: Path) -> dict:
    """petal predict --csv of a photo filed under a folder named like a formula."""
    photo = folder / FORMULA / "daisy.jpg"
    photo.parent.mkdir(parents=True)
    shutil.copyfile(FLOWER, photo)
    done = subprocess.run([PETAL, "predict", model, str(folder / FORMULA), "--csv"],
                          capture_output=True, text=True, timeout=300)
    cells = [cell for row in csv.reader(io.StringIO(done.stdout)) for cell in row]
    formulas = [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    print(f"csv: petal predict MODEL '{FORMULA}/' --csv: exit {done.returncode}, {len(cells)} "
          f"cells, {len(formulas)} starting with a formula character")
    return {"exit": done.returncode, "cells": len(cells), "formula_cells": formulas,
            "as_expected": done.returncode == 0 and not formulas}


def writers_section(folder: Path) -> dict:
    """Two trainings into one folder at once; a resume of a run while it trains."""
    data = linked(FLOWERS, folder / "data", per_class=20)
    train = [PETAL, "train", "--data", str(data), "--set", "epochs=3", "--no-progress",
             "--cache-dir", str(folder / "cache")]
    subprocess.run([*train, "--out", str(folder / "warm")], capture_output=True, timeout=600)
    both = [subprocess.Popen([*train, "--out", str(folder / "one")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [(p.wait(600), p.stderr.read().strip().splitlines()[-1:]) for p in both]
    # long enough (200 epochs on stored features) for the resume to come while it trains
    first = subprocess.Popen([*train, "--set", "epochs=200", "--out", str(folder / "two")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (folder / "two" / "config.json").exists() and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run([PETAL, "train", "--resume", str(folder / "two"), "--no-progress"],
                            capture_output=True, text=True, timeout=600)
    still_training = first.poll() is None
    resumed = (first.wait(600), second.returncode, second.stderr.strip().splitlines()[-1:])
    result = {"together": {"exits": sorted(code for code, _ in ended),
                           "refused": [line for code, lines in ended if code for line in lines]},
              "resume_while_training": {"training_exit": resumed[0], "resume_exit": resumed[1],
                                        "still_training": still_training, "said": resumed[2]}}
    result["as_expected"] = (result["together"]["exits"] == [0, 1] and still_training
                             and resumed[:2] == (0, 1) and "in use by process" in str(resumed[2]))
    print(f"writers: two trainings together: exits {result['together']['exits']}, "
          f"{result['together']['refused']}; --resume while training (still training when it "
          f"ended: {still_training}): training exit {resumed[0]}, resume exit {resumed[1]}, "
          f"{resumed[2]}")
    return result


def _ran(args: list[str], cwd: Path | None = None) -> tuple[int, str]:
    done = subprocess.run([PETAL, *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    return done.returncode, (done.stderr.strip().splitlines() or ["done"])[-1][:110]


def paths_section(model: Path, folder: Path) -> dict:
    """Hostile output paths, working folders and names (module docstring): each case's exit
    status, last line, and whether what it must not touch is as it was."""
    print("paths: what each case must leave as it was")
    data = linked(FLOWERS, folder / "data", per_class=6)
    (folder / "mine.txt").write_text("a person's file")
    (folder / "link.json").symlink_to(folder / "mine.txt")
    os.mkfifo(folder / "pipe.json")
    (folder / "folder.onnx").mkdir()
    fresh = folder / "fresh"  # the model without its export: the first use exports it
    shutil.copytree(model, fresh, ignore=shutil.ignore_patterns("model.onnx*"))
    work = folder / "work" / "petal"
    work.mkdir(parents=True)
    (work / "__init__.py").write_text(f"open({str(folder / 'ran')!r}, 'w').write('ran')\n")
    crafted = folder / "crafted"
    shutil.copytree(model, crafted)
    card = json.loads((crafted / "model.json").read_text())
    card["classes"][0] = "../../escaped"
    (crafted / "model.json").write_text(json.dumps(card))
    (folder / "unlabelled").mkdir()
    shutil.copyfile(FLOWER, folder / "unlabelled" / "a.jpg")
    photos = sorted(p.name for p in data.rglob("*"))
    cases = {
        "a symbolic link as data split --out": (
            ["data", "split", str(data), "--out", str(folder / "link.json")], None, 1,
            lambda: (folder / "link.json").is_symlink()
            and (folder / "mine.txt").read_text() == "a person's file"),
        "a named pipe as data split --out": (
            ["data", "split", str(data), "--out", str(folder / "pipe.json")], None, 1,
            lambda: (folder / "pipe.json").is_fifo()),
        "a folder as export --out": (
            ["export", str(model), "--out", str(folder / "folder.onnx")], None, 1,
            lambda: not any((folder / "folder.onnx").iterdir())),
        "data review --out inside the photos": (
            ["data", "review", str(data), "--out", str(data / "rev")], None, 1,
            lambda: sorted(p.name for p in data.rglob("*")) == photos),
        "train --resume with other options": (
            ["train", "--resume", str(model.parent), "--set", "epochs=30", "--lr", "0.5",
             "--data", "/nonexistent"], None, 1, lambda: True),
        "a petal/ package in the working folder": (
            ["predict", str(fresh), str(FLOWER)], folder / "work", 0,
            lambda: not (folder / "ran").exists() and (fresh / "model.onnx").is_file()),
        "a model card's class ../../escaped": (
            ["label", str(folder / "unlabelled"), "--model", str(crafted), "--out",
             str(folder / "labels" / "new")], None, 1,
            lambda: not (folder / "escaped").exists() and not (folder / "labels").exists()),
    }
    rows = {}
    for name, (args, cwd, expected, untouched) in cases.items():
        status, said = _ran(args, cwd)
        rows[name] = {"exit": status, "said": said.replace(str(folder), "TMP"),
                      "as_expected": status == expected and untouched()}
        print(f"  {name:40} exit {status}{'' if rows[name]['as_expected'] else ' (UNEXPECTED)'}"
              f"  {rows[name]['said']}", flush=True)
    rows["names with a carriage return"] = _carriage_return(folder)
    return {"cases": rows, "as_expected": all(row["as_expected"] for row in rows.values())}


def _carriage_return(folder: Path) -> dict:
    """A review file and a labels file whose photo names hold CR and LF: each row reads back
    whole after a decision."""
    from petal.data.decisions import write_review_file
    from petal.data.new_labels import NewLabels
    from petal.data.review_sheet import ReviewSheet

    names = ["cr\rname.jpg", "lf\nname.jpg"]
    write_review_file(folder / "review.csv", [{"path": f"daisy/{n}", "given": "daisy",
                                               "suggested": "rose", "score": 0.5}
                                              for n in names], [])
    sheet = ReviewSheet.read(folder / "review.csv")
    sheet.decide(f"daisy/{names[0]}", "exclude")
    sheet.save()
    rows = [r["path"] for r in ReviewSheet.read(folder / "review.csv").findings()]
    photos = folder / "odd"
    photos.mkdir()
    for name in names:
        shutil.copyfile(FLOWER, photos / name)
    new = NewLabels.open(folder / "odd-labels", ["daisy", "rose"], photos)
    for name in names:
        new.decide(new.photos / name, hashlib.sha256(FLOWER.read_bytes()).hexdigest(),
                   "label", "rose")
    again = NewLabels.open(folder / "odd-labels", ["daisy", "rose"], photos)
    row = {"review_rows": len(rows), "label_rows": len(again.rows),
           "as_expected": rows == [f"daisy/{n}" for n in names] and len(again.rows) == 2}
    print(f"  {'names with a carriage return':40} review rows {row['review_rows']}, label "
          f"rows {row['label_rows']}{'' if row['as_expected'] else ' (UNEXPECTED)'}")
    return row


def _plain(figures: dict) -> dict:
    return {key: value for key, value in figures.items() if key != "output"}


SECTIONS = ("images", "heic", "labels", "review", "novelty", "csv", "writers", "paths")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a run or model folder")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="these sections only (default all)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    model = Path(args.model)
    model = model / "model" if (model / "model" / "model.json").is_file() else model
    results = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for section in args.only:
            (folder / section).mkdir()
            where = folder / section
            results[section] = {
                "images": lambda: images_section(str(model), where),
                "heic": lambda: heic_section(str(model), where),
                "labels": lambda: labels_section(where),
                "review": lambda: review_section(where),
                "novelty": lambda: novelty_section(model, where),
                "csv": lambda: csv_section(str(model), where),
                "writers": lambda: writers_section(where),
                "paths": lambda: paths_section(model, where),
            }[section]()
    rows = {f"{section}: {name}": row
            for section in ("images", "heic", "labels", "review", "novelty")
            if section in results for name, row in results[section]["cases"].items()}
    # a review file petal admits costs CPU by its size (its limit is 64 MiB); memory counts
    over = [name for name, row in rows.items() if row["extra_mib"] > LIMIT_MIB or (
        row["extra_cpu_s"] > LIMIT_CPU_S and not (name.startswith(("review", "labels"))
                                                  and not row["exit"]))]
    unexpected = [name for name, row in rows.items() if not row["as_expected"]] + [
        section for section in ("csv", "writers", "paths")
        if section in results and not results[section]["as_expected"]]
    print(f"over {LIMIT_MIB} MiB or {LIMIT_CPU_S} s: {', '.join(over) or 'none'}; "
          f"not ended as they should: {', '.join(unexpected) or 'none'}")
    if args.json:
        record(args.json, {"model": str(model), **results}, "peak memory, CPU and exit of "
               f"petal on the worst input; sections: {', '.join(args.only)}")
    return 1 if over or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
