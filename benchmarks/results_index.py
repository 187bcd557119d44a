"""The index of each results folder (its README.md), generated from the stamps that
`common.record` writes into every result file: what the file holds, the command that wrote
it, when, on which host and from which commit.

    .venv/bin/python benchmarks/results_index.py          # rewrite the indexes
    .venv/bin/python benchmarks/results_index.py --check  # exit 1 if one is stale

tests/test_docs.py runs the check, so a result file added without its index line fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository (no petal import: this is cheap)
HEADERS = {
    "benchmarks/results": """# Benchmark results

The raw figures behind [docs/RESULTS.md](../../docs/RESULTS.md), one file per measurement, as
the scripts in `benchmarks/` wrote them (run from the repository root). Every figure is on
the flowers set's default split (seed 0: 3884 train / 431 validation) unless the file says
otherwise; all hosts had 2 CPU cores and no GPU (RESULTS.md's appendix describes them). Each
file's `recorded` section says what it holds, the command, the date, the machine and the
commit; this index is generated from those sections by `benchmarks/results_index.py`. Files
written before 2026-12-07 were stamped afterwards from the index then kept by hand (their
`stamped_later`); those of before 2026-12-01 record the CPU only as "AMD EPYC", and which
host it was comes from RESULTS.md of the day. Paths inside the files are as they were when
the files were written; recipes named `seed-*` there are today's `original-*`. Results that
only back the tuning log are in [benchmarks/tuning/results/](../tuning/results/README.md).
""",
    "benchmarks/tuning/results": """# Tuning results

The figures that only back the tuning log, [docs/TUNING.md](../../../docs/TUNING.md), written
by the helpers in `benchmarks/tuning/` (see [its README](../README.md)) and by some
benchmarks. Each file's `recorded` section says what it holds, the command, the date, the
machine and the commit; this index is generated from those sections by
`benchmarks/results_index.py`. Files written before 2026-12-07 were stamped afterwards from
the index then kept by hand (their `stamped_later`).
""",
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _command(stamp: dict) -> str:
    """The command as typed; a stamp made afterwards holds the old index's Markdown as is."""
    if stamp.get("stamped_later"):
        return stamp["command"]
    command = stamp["command"].replace("`", "'")
    return f"`{command}`" + (" (uncommitted changes)" if stamp.get("code_changed") else "")


def index(folder: str) -> str:
    """The README.md of the results folder `folder` (relative to the repository)."""
    rows = ["| file | what it holds | written by | date | host | commit |",
            "|---|---|---|---|---|---|"]
    for path in sorted((ROOT / folder).glob("*.json")):
        stamp = json.loads(path.read_text()).get("recorded")
        if not stamp:
            raise ValueError(f"{path.relative_to(ROOT)} has no `recorded` stamp: write result "
                             "files with benchmarks/common.record")
        rows.append(f"| `{path.name}` | {_cell(stamp['about'])} | {_cell(_command(stamp))} | "
                    f"{stamp['date'][:10]} | {_cell(stamp['host'])} | "
                    f"{stamp['commit'] or '-'} |")
    return HEADERS[folder] + "\n" + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if an index differs from its files")
    args = parser.parse_args()
    stale = []
    for folder in HEADERS:
        readme, text = ROOT / folder / "README.md", index(folder)
        if readme.is_file() and readme.read_text() == text:
            continue
        stale.append(folder)
        if not args.check:
            readme.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)} (run benchmarks/results_index.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
