"""The front page and the documentation site's generated pages stay true to the code."""

from __future__ import annotations

from pathlib import Path

import nbformat

from petal.cli import build_parser
from petal.cli.reference import markdown

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_reference_is_what_the_parser_says() -> None:
    """docs/cli.md is written from the parser; `make docs` writes it again."""
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == markdown(build_parser()), "stale: run `make docs`"
    for command in ("petal train", "petal data review", "petal export", "petal serve"):
        assert f"`{command}`" in written


def test_the_readme_is_a_front_page() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


def test_the_notebook_in_the_repository_shows_a_full_run() -> None:
    notebook = nbformat.read(ROOT / "docs" / "flowers.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "run `make notebook` to execute it"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    parameters = next(c for c in code if "parameters" in c.metadata.get("tags", []))
    assert "PER_CLASS = None" in parameters.source and "\nPER_CLASS = 12" not in parameters.source
