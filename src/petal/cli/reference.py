"""The command-line reference of the documentation site (docs/cli.md), written from the
argparse parser itself, so that it says what `petal COMMAND --help` says:

    .venv/bin/python -m petal.cli.reference > docs/cli.md     # (make docs does it)

tests/test_docs.py fails when the file in the repository is not what this writes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

HEADER = """# Command-line reference

Every command and option of `petal`, as `petal COMMAND --help` gives them (this page is
written from the same parser by `petal.cli.reference`; `make docs` writes it again). Each
command calls the Python function of the same name ([Python API](python-api.md)).
"""


def _subcommands(parser: argparse.ArgumentParser
                 ) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Each subcommand's parser and its one-line help."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}  # noqa: SLF001
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.dest}`"
    takes = action.nargs != 0 and not isinstance(action, argparse.BooleanOptionalAction)
    if takes and action.option_strings:
        metavar = action.metavar or (f"{{{','.join(map(str, action.choices))}}}"
                                     if action.choices else action.dest.upper())
        names += f" `{metavar}`"
    return names


def _command(name: str, parser: argparse.ArgumentParser, summary: str, depth: int
             ) -> Iterator[str]:
    yield f"{'#' * depth} `{name}`"
    yield ""
    if parser.description or summary:
        yield _cell(parser.description or summary)
        yield ""
    children = _subcommands(parser)
    if children:
        for child, (sub, help_line) in children.items():
            yield from _command(f"{name} {child}", sub, help_line, depth + 1)
        return
    yield "```text"
    yield " ".join(parser.format_usage().split()).removeprefix("usage: ")
    yield "```"
    yield ""
    rows = [(_option(action), _cell(action.help or "")) for action in parser._actions  # noqa: SLF001
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)]  # noqa: SLF001
    if rows:
        yield "| argument | what it does |"
        yield "|---|---|"
        yield from (f"| {names} | {text} |" for names, text in rows)
        yield ""


def markdown(parser: argparse.ArgumentParser) -> str:
    """The reference page of `parser` (petal's), a section a command."""
    lines = [HEADER]
    for name, (sub, help_line) in _subcommands(parser).items():
        lines.extend(_command(f"petal {name}", sub, help_line, 2))
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from petal.cli import build_parser

    sys.stdout.write(markdown(build_parser()))
