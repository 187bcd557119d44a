"""Run docs/flowers.ipynb, the write-up as an executed notebook, and say how long it took.

    .venv/bin/python benchmarks/notebook.py --write          # make notebook: the full set,
                                                             # outputs saved into the notebook
    .venv/bin/python benchmarks/notebook.py --per-class 12 --quick --runs /tmp/nb \
        --out /tmp/nb/flowers.ipynb                          # the test suite's slice

The notebook runs in the project's root (its DATA and OUT are relative to it), in a fresh
Jupyter kernel (nbclient); any error in a cell fails the run. Parameters replace the cell
tagged `parameters`, as papermill does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "flowers.ipynb"
# a quick run on a slice: a narrow ResNet9 on small crops, two epochs each
QUICK = {"SCRATCH": {"epochs": 2, "width": 0.25, "input_size": 64}, "TRANSFER": {"epochs": 2}}


def execute(parameters: dict[str, object], timeout_s: int = 3600) -> nbformat.NotebookNode:
    """The notebook run with `parameters` in place of its defaults; CellExecutionError (with
    the failing cell and its traceback) for any error."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "".join(f"\n{name} = {value!r}" for name, value in parameters.items())
    NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the flowers folder (default: the notebook's own)")
    parser.add_argument("--per-class", type=int, help="a slice: the first N photos a class")
    parser.add_argument("--quick", action="store_true", help="two epochs each, small crops")
    parser.add_argument("--runs", help="the folder the notebook trains into (default: its own, "
                        "runs/notebook)")
    parser.add_argument("--out", help="write the executed notebook here")
    parser.add_argument("--write", action="store_true",
                        help="write the executed notebook over docs/flowers.ipynb")
    args = parser.parse_args()
    parameters: dict[str, object] = dict(QUICK) if args.quick else {}
    if args.data:
        parameters["DATA"] = str(Path(args.data).resolve())
    if args.per_class:
        parameters["PER_CLASS"] = args.per_class
    if args.runs:
        parameters["OUT"] = str(Path(args.runs).resolve())
    started = time.perf_counter()
    executed = execute(parameters)
    seconds = time.perf_counter() - started
    if args.write:
        cell = next(c for c in executed.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = nbformat.read(NOTEBOOK, as_version=4).cells[
            executed.cells.index(cell)].source  # the defaults, as a reader should see them
        nbformat.write(executed, NOTEBOOK)
    if args.out:
        nbformat.write(executed, args.out)
    print(f"docs/flowers.ipynb ran in {seconds:.0f} s"
          + (f" with {parameters}" if parameters else " (the whole flowers set)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
