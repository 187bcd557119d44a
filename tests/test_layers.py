"""petal's import graph: each package imports only from the layers below it (or its own), no
module inside imports the package root, and the module-level imports have no cycle
(docs/code-layout.md). Read from the source with `ast`: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "petal"
# Lowest first. One layer may hold packages that do not import each other.
LAYERS = [
    {"foundations"},  # the modules at the root: errors, fsutil, stats, system, display, ...
    {"data"},
    {"models", "report"},
    {"inference"},
    {"training", "analysis"},
    {"jobs", "serve"},
    {"api"},  # api.py and __init__.py: the public names
    {"cli"},
]
RANK = {part: rank for rank, layer in enumerate(LAYERS) for part in layer}


def part_of(module: str) -> str:
    """The layer part of a module name such as petal.jobs.review or petal.stats."""
    pieces = module.split(".")
    if len(pieces) > 2 or (SOURCE / pieces[-1]).is_dir():
        return pieces[1]
    return "api" if pieces[-1] in {"api", "petal"} else "foundations"


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(module imported, at module level or not, line) for every petal import in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "petal":
                names = [f"petal.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, id(node) in top, node.lineno) for name in names
                  if name == "petal" or name.startswith("petal.")]
    return found


def modules() -> dict[str, Path]:
    named = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        named[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return named


def test_no_import_runs_up_the_layers() -> None:
    upward = []
    for name, path in modules().items():
        if name == "petal":
            continue  # the package root names everything, lazily
        source = part_of(name)
        for target, _, line in imports(path):
            if target == "petal":
                upward.append(f"{name}:{line} imports the package root")
                continue
            goal = part_of(target)
            if goal != source and RANK[goal] >= RANK[source]:
                upward.append(f"{name}:{line} imports {target} ({goal} is not below {source})")
    assert not upward, "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (module -> the modules it imports), or None."""
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state and (cycle := visit(target, [*trail, target])):
                return cycle
        state[name] = "done"
        return None

    return next((cycle for name in sorted(graph)
                 if name not in state and (cycle := visit(name, [name]))), None)


def test_no_cycle_among_module_level_imports() -> None:
    named = modules()
    graph = {name: {target if target in named else target.rsplit(".", 1)[0]
                    for target, top, _ in imports(path) if top} & named.keys() - {name}
             for name, path in named.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """The parser sees a lazy import and an import of the root, parts are named right, and a
    cycle is found."""
    module = tmp_path / "m.py"
    module.write_text("import petal\n\ndef f():\n    from petal.jobs.review import Review\n")
    assert imports(module) == [("petal", True, 1), ("petal.jobs.review", False, 4)]
    assert part_of("petal.jobs.review") == "jobs" and part_of("petal.stats") == "foundations"
    assert part_of("petal.analysis") == "analysis" and part_of("petal.api") == "api"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
