"""The run folder module: history round trip, locating a run's model, and reports that render
from the files alone (no Lightning, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from petal.errors import PetalError
from petal.run_folder import (
    CURVES,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    LR_STEPS_FILE,
    find_model_folder,
    read_history,
    read_lr_steps,
    run_of_model,
    write_history,
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
