"""Trainings in processes of their own: two at once into one folder, DDP on two processes,
progress bars on a terminal or not, SIGTERM, and Ctrl-C in petal.train."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import petal
from conftest import COLOURS, colour_photos
from petal.inference.model_folder import load_model
from petal.run_folder import read_history

TINY = ["--set", "width=0.125", "--set", "input_size=32", "--set", "batch_size=4"]


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    """Noisy red, blue and green squares, 12 of each."""
    for name, rgb in {**COLOURS, "green": (30, 190, 40)}.items():
        colour_photos(tmp_path / "data", name, rgb, 12)
    return tmp_path


def test_two_trainings_started_together_into_one_folder(image_folder: Path,
                                                        tmp_path: Path) -> None:
    """Both passed the "already holds a run" check before it was taken under the lock."""
    petal = Path(sys.executable).with_name("petal")
    command = [petal, "train", "--data", str(image_folder), "--recipe", "original-resnet9",
               "--set", "width=0.125", "--set", "input_size=32", "--set", "batch_size=4",
               "--set", "epochs=1", "--no-progress", "--cache-dir", str(tmp_path / "cache"),
               "--out", str(tmp_path / "run")]
    started = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    done = [(p.wait(timeout=300), p.stderr.read()) for p in started]
    assert sorted(code for code, _ in done) == [0, 1], done
    refused = next(err for code, err in done if code == 1)
    assert "is in use by process" in refused or "already holds a run" in refused


def test_ddp_two_processes_only_rank_zero_writes(image_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    petal = Path(sys.executable).with_name("petal")
    done = subprocess.run(
        [petal, "train", "--data", str(image_folder), "--recipe", "original-resnet9", *TINY,
         "--set", "epochs=2", "--out", str(run), "--no-progress", "--cache-dir",
         str(tmp_path / "cache"), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--lr", "auto"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Done: validation accuracy") == 1
    assert len(read_history(run / "history.csv")) == 2
    steps = (run / "lr_steps.csv").read_text().splitlines()[1:]
    assert len(steps) == len({line.split(",")[0] for line in steps})  # one writer
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["accuracy.png", "checkpoints", "config.json", "history.csv", "loss.png", "lr.png",
         "lr_find.png", "lr_steps.csv", "model", "split.json"])
    config = json.loads((run / "config.json").read_text())
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["recipe"]["lr"] == config["lr_found"]  # trained at the suggestion
    model, _ = load_model(run)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_progress_bars_only_on_a_terminal_unless_asked(image_folder: Path,
                                                       tmp_path: Path) -> None:
    petal = Path(sys.executable).with_name("petal")

    def train(name: str, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([petal, "train", "--data", str(image_folder), "--recipe",
                               "original-resnet9", *TINY, "--set", "epochs=2", "--out",
                               str(tmp_path / name), "--cache-dir", str(tmp_path / "c"), *flags],
                              capture_output=True, text=True, timeout=300)

    piped = train("piped")
    assert piped.returncode == 0, piped.stderr
    log = piped.stdout + piped.stderr
    assert "\r" not in log and "\x1b[" not in log and "%|" not in log
    assert log.count("\n") < 40 and "Done:" in piped.stdout
    forced = train("forced", "--progress")
    assert forced.returncode == 0 and "%|" in forced.stderr  # a tqdm bar


def test_sigterm_stops_training_with_a_failing_status(image_folder: Path,
                                                       tmp_path: Path) -> None:
    """Lightning stops on SIGTERM by raising a SystemExit without a code: petal must not
    exit 0 as if the model had been trained."""
    import signal

    petal_cli = Path(sys.executable).with_name("petal")
    process = subprocess.Popen(
        [petal_cli, "train", "--data", str(image_folder), "--recipe", "fast-resnet9",
         "--set", "width=0.125", "--set", "input_size=32", "--set", "batch_size=4",
         "--set", "epochs=1000", "--folds", "0", "--out", str(tmp_path / "run"),
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("Training on"):
            break
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    assert not (tmp_path / "run" / "model").exists()


def test_ctrl_c_in_train_leaves_a_resumable_run_and_python_as_it_was(colours: Path,
                                                                     tmp_path: Path) -> None:
    """As in a notebook: KeyboardInterrupt out of petal.train, SIGINT's handler as it was
    (Lightning sets it to ignore and calls sys.exit), then resume= finishes the run."""
    run = tmp_path / "run"
    code = f"""
import signal, sys, petal
try:
    petal.train({str(colours / 'data')!r}, out={str(run)!r}, recipe="fast-resnet9",
                overrides={{"width": 0.125, "input_size": 32, "epochs": 40}}, folds=0,
                cache_dir={str(tmp_path / 'cache')!r}, progress=False)
except KeyboardInterrupt:
    print("interrupted", signal.getsignal(signal.SIGINT) is signal.default_int_handler,
          flush=True)
petal.train(resume={str(run)!r}, progress=False)
print("resumed", petal.Run({str(run)!r}).accuracy["how"], flush=True)
"""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip().startswith("3 "):  # the third epoch's row
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=600)
    said = "".join(lines) + out
    assert process.returncode == 0, err[-3000:]
    assert "interrupted True" in said and "resumed validation" in said
    assert "Resuming" in said and len(np.unique([r["epoch"] for r in
                                                 petal.Run(run).history])) == 40
