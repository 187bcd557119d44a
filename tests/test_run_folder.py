"""The run folder module: history round trip, locating a run's model, and reports that render
from the files alone (no Lightning, no torch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petal.cli import main
from petal.errors import PetalError
from petal.run_folder import (
    CURVES,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    LOCK_FILE,
    LR_STEPS_FILE,
    find_model_folder,
    read_history,
    read_lr_steps,
    run_of_model,
    write_history,
    writing,
)

ROWS = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_acc": 0.5 + e / 10,
         "lr": 1e-3 / e, "epoch_seconds": 2.0, "elapsed_seconds": 2.0 * e} for e in (1, 2, 3)]


def _history_files(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    write_history(run / HISTORY_FILE, ROWS)
    (run / LR_STEPS_FILE).write_text("step,lr\n" + "".join(f"{s},{1e-3 / (s + 1):.6g}\n"
                                                           for s in range(12)))


def test_history_round_trip(tmp_path: Path) -> None:
    _history_files(tmp_path)
    assert (tmp_path / HISTORY_FILE).read_text().splitlines()[0] == ",".join(HISTORY_COLUMNS)
    for read, written in zip(read_history(tmp_path / HISTORY_FILE), ROWS, strict=True):
        assert read == pytest.approx(written, rel=1e-5)
    steps = read_lr_steps(tmp_path / LR_STEPS_FILE)
    assert steps[0] == (0, 1e-3) and steps[-1][0] == 11


def test_model_folder_of_a_run_and_run_of_a_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.json").write_text("{}")
    with pytest.raises(PetalError, match="neither a model folder"):
        find_model_folder(tmp_path)
    assert find_model_folder(run) == run / "model"
    assert run_of_model(run / "model") == run / "model"  # no config.json: it stands alone
    (run / "config.json").write_text(json.dumps({}))
    assert run_of_model(run / "model") == run


def test_curves_render_without_lightning_or_torch(tmp_path: Path) -> None:
    _history_files(tmp_path)
    script = ("import sys; from pathlib import Path\n"
              "from petal.report.curves import plot_history\n"
              "import petal.report.html\n"
              f"plot_history(Path({str(tmp_path)!r}))\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & "
              "{'lightning', 'torch', 'timm', 'torchvision'}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert all((tmp_path / name).stat().st_size > 10_000 for name in CURVES)


# --- one writer at a time (issue 33) ----------------------------------------------------------

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom petal.run_folder import writing\n"
        "with writing(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A run folder held by another process, and that process."""
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline() == "held\n"
        yield run, process
    finally:
        process.kill()
        process.wait()


def test_a_second_writer_is_refused_and_a_killed_ones_lock_is_taken_over(
        holder: tuple[Path, subprocess.Popen]) -> None:
    run, process = holder
    with pytest.raises(PetalError, match=f"{run} is in use by process {process.pid}: wait"):
        with writing(run):
            pass
    process.kill()  # SIGKILL: no clean-up of its own
    process.wait()
    with writing(run):
        assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with writing(run):  # nested in one process: the same hold
            pass
        assert (run / LOCK_FILE).exists()
    assert list(run.iterdir()) == []  # the lock goes with its holder


def test_a_failed_start_leaves_no_folder_behind(tmp_path: Path) -> None:
    with pytest.raises(PetalError, match="bad data"):
        with writing(tmp_path / "new"):
            raise PetalError("bad data")
    assert not (tmp_path / "new").exists()


def test_train_and_resume_refuse_a_run_in_use(holder: tuple[Path, subprocess.Popen],
                                              tiny_run: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    run, process = holder
    assert main(["train", "--data", str(tiny_run.parent / "data"), "--out", str(run),
                 "--no-progress"]) == 1
    assert f"error: {run} is in use by process {process.pid}" in capsys.readouterr().err
    shutil.copytree(tiny_run, run, dirs_exist_ok=True)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 1
    assert f"error: {run} is in use by process {process.pid}" in capsys.readouterr().err
    assert main(["run", "--data", str(tiny_run.parent / "data"), "--out", str(run),
                 "--no-progress"]) == 1
    assert f"error: {run} is in use by process {process.pid}" in capsys.readouterr().err


