"""`petal.predict` and `petal predict --out FILE.csv`: predictions written as they are made,
resumable after a kill with no row lost or doubled, decoded by worker processes alike."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import petal
from conftest import write_image
from petal.errors import PetalError

PETAL = str(Path(sys.executable).with_name("petal"))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for i in range(40):
        write_image(tmp_path / "photos" / f"sub{i % 3}" / f"p{i:03d}.png", seed=300 + i)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    return tmp_path / "photos"


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_a_list_from_python(tiny_run: Path, photos: Path) -> None:
    said = petal.predict(tiny_run, photos, top_k=2, progress=False)
    assert len(said) == 40 and all(len(p.labels) == 2 for p in said)
    assert "broken.jpg" not in {Path(p.source).name for p in said}
    with pytest.raises(PetalError, match="no image could be predicted"):
        petal.predict(tiny_run, photos / "broken.jpg", progress=False)


def test_rows_are_those_of_csv_and_a_second_run_adds_none(tiny_run: Path, photos: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "out" / "predictions.csv"
    written = petal.predict(tiny_run, photos, out=out, top_k=3, progress=False)
    assert (written.photos, written.resumed, len(written.skipped)) == (40, 0, 1)
    printed = subprocess.run([PETAL, "predict", str(tiny_run), str(photos), "--csv",
                              "--top-k", "3"], capture_output=True, text=True)
    assert rows(out) == list(csv.reader(printed.stdout.splitlines()))
    again = petal.predict(tiny_run, photos, out=out, top_k=3, progress=False)
    assert (again.photos, again.resumed) == (40, 40) and len(rows(out)) == 1 + 40 * 3
    progress = json.loads(out.with_name("predictions.csv.progress").read_text())
    assert progress["bytes"] == out.stat().st_size and progress["top_k"] == 3


def test_a_killed_run_goes_on_after_its_last_row(tiny_run: Path, photos: Path,
                                                 tmp_path: Path) -> None:
    """SIGKILL in the middle, then half a batch appended (a write cut short): the second run
    cuts it off and predicts only the rest; the file ends as one run's would."""
    out = tmp_path / "killed.csv"
    progress = out.with_name("killed.csv.progress")
    job = subprocess.Popen([PETAL, "predict", str(tiny_run), str(photos), "--out", str(out),
                            "--batch-size", "1", "--engine", "torch"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.poll() is None:
        if progress.is_file() and json.loads(progress.read_text())["bytes"] > 2000:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    before = len(rows(out)) - 1
    assert 0 < before < 40 * 3, "the job was not killed in the middle"
    with open(out, "a") as handle:
        handle.write(f"{photos}/sub0/p000.png,1,cat,0.5")  # half a row, no line end
    done = subprocess.run([PETAL, "predict", str(tiny_run), str(photos), "--out", str(out),
                           "--batch-size", "1", "--engine", "torch"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "from an earlier run" in done.stdout
    whole = tmp_path / "whole.csv"
    petal.predict(tiny_run, photos, out=whole, engine="torch", batch_size=1, progress=False)
    assert sorted(rows(out)[1:]) == sorted(rows(whole)[1:])  # none lost, none doubled
    assert len(rows(out)) == 1 + 40 * 3  # 3 classes: 3 rows a photo


def test_workers_decode_alike(tiny_run: Path, photos: Path, tmp_path: Path) -> None:
    alone = petal.predict(tiny_run, photos, out=tmp_path / "a.csv", progress=False)
    shared = petal.predict(tiny_run, photos, out=tmp_path / "b.csv", workers=2, progress=False)
    assert alone.photos == shared.photos == 40
    assert rows(tmp_path / "a.csv") == rows(tmp_path / "b.csv")


def test_a_file_it_did_not_write_or_other_settings_are_refused(tiny_run: Path, photos: Path,
                                                               tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("a person's own file\n")
    with pytest.raises(PetalError, match="not a file `petal predict --out` was writing"):
        petal.predict(tiny_run, photos, out=mine, progress=False)
    assert mine.read_text() == "a person's own file\n"
    out = tmp_path / "p.csv"
    petal.predict(tiny_run, photos, out=out, top_k=2, progress=False)
    with pytest.raises(PetalError, match="made with another top_k"):
        petal.predict(tiny_run, photos, out=out, top_k=3, progress=False)
    with pytest.raises(PetalError, match="made with another keep"):
        petal.predict(tiny_run, photos, out=out, top_k=2, keep_known=0.99, progress=False)
    done = subprocess.run([PETAL, "predict", str(tiny_run), str(photos), "--out", str(out),
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 1 and "leave out --json" in done.stderr


@pytest.mark.parametrize("progress", ['{"bytes": "many"}', "not json", "[1, 2]",
                                      '{"bytes": 99999999, "model": "x"}'])
def test_a_crafted_progress_file_is_refused_and_nothing_is_cut(tiny_run: Path, photos: Path,
                                                              tmp_path: Path,
                                                              progress: str) -> None:
    out = tmp_path / "p.csv"
    petal.predict(tiny_run, photos, out=out, progress=False)
    before = out.read_bytes()
    out.with_name("p.csv.progress").write_text(progress)
    with pytest.raises(PetalError, match="p.csv"):
        petal.predict(tiny_run, photos, out=out, progress=False)
    assert out.read_bytes() == before
