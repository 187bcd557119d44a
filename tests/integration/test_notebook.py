"""docs/flowers.ipynb, the write-up as an executed notebook, runs on a slice of the flowers set
without an error (benchmarks/notebook.py; `make notebook` runs it whole)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "flowers.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def test_the_notebook_runs_on_a_slice(flowers: Path, tmp_path: Path) -> None:
    executed = tmp_path / "flowers.ipynb"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "notebook.py"), "--data", str(flowers),
         "--per-class", "12", "--quick", "--runs", str(tmp_path / "runs"), "--out",
         str(executed)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    outputs = _outputs(nbformat.read(executed, as_version=4))
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("execute_result", "display_data")]
    # check, LR finder, two runs, two evaluations, comparison, two explanations: HTML
    assert sum("text/html" in o.data for o in shown) >= 9
    assert sum("image/png" in o.data for o in shown) >= 3  # the photos drawn in the notebook
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "epoch  train_loss" in printed and "Done: validation accuracy" in printed
    assert "novelty" in printed  # the portrait's answer
    assert not (flowers / "runs").exists()
