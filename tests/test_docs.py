"""The front page and the documentation site's generated pages stay true to the code."""

from __future__ import annotations

from pathlib import Path

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
