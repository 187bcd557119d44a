"""petal from Python (petal.api): every verb a function that returns an object, the library
speaking through logging, bad input refused before any work, Ctrl-C leaving a resumable run."""

from __future__ import annotations

import ast
import csv
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import petal
from conftest import COLOURS, colour_photos, write_image
from petal.cli import main

SRC = Path(petal.__file__).parent
TINY = {"width": 0.125, "input_size": 32, "epochs": 3}


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noisy red, blue and green squares, 12 of each."""
    root = tmp_path_factory.mktemp("api")
    for name, rgb in {**COLOURS, "green": (30, 190, 40)}.items():
        colour_photos(root / "data", name, rgb, 12)
    return root


@pytest.fixture(scope="module")
def api_run(colours: Path) -> petal.Run:
    return petal.train(colours / "data", out=colours / "run", recipe="fast-resnet9",
                       overrides=TINY, folds=0, cache_dir=colours / "cache", progress=False)


def test_import_petal_loads_neither_torch_nor_numpy() -> None:
    code = ("import sys, petal; petal.train, petal.evaluate, petal.PetalError; "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr
    assert {"check", "train", "lr_find", "evaluate", "review", "compare", "export", "explain",
            "run", "load", "Run", "Evaluation", "LRFinding", "PetalError"} <= set(petal.__all__)


def test_the_library_never_prints_or_exits() -> None:
    """Only the CLI prints, and the pages' start-up line (petal.serve.local_page)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.parts[-2] == "cli" or path.name == "local_page.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "print", "tqdm.write", "sys.exit", "exit"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def test_train_returns_a_run_that_shows_itself(api_run: petal.Run, colours: Path) -> None:
    assert isinstance(api_run, petal.Run) and os.fspath(api_run) == str(colours / "run")
    accuracy = api_run.accuracy
    assert accuracy["how"] == "validation" and 0 < accuracy["n"] == accuracy["n"]
    assert 0 <= accuracy["value"] <= 1 and len(accuracy["interval"]) == 2
    with open(colours / "run" / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(api_run.history) == len(rows) == TINY["epochs"]
    assert api_run.history[-1]["val_acc"] == pytest.approx(float(rows[-1]["val_acc"]))
    figures = api_run.plot()
    assert list(figures) == ["accuracy.png", "loss.png", "lr.png"]
    assert all(isinstance(f, Figure) for f in figures.values())
    html = api_run._repr_html_()
    assert "validation accuracy" in html and html.count("<img") == 3 and "<table>" in html
    assert api_run.classifier.predict(colours / "data/red/0.png").label in ("red", "blue",
                                                                            "green")


def test_evaluate_check_lr_find_and_compare_return_objects(api_run: petal.Run,
                                                           colours: Path) -> None:
    evaluation = petal.evaluate(api_run, progress=False)
    assert isinstance(evaluation, petal.Evaluation)
    assert evaluation.accuracy["n"] == api_run.accuracy["n"]
    assert evaluation.confusion_matrix.shape == (3, 3)
    assert evaluation.confusion_matrix.sum() == evaluation.accuracy["n"]
    assert [row["class"] for row in evaluation.per_class] == ["blue", "green", "red"]
    assert set(evaluation.plot()) == {"confusion_matrix.png", "reliability.png"}
    assert "accuracy" in evaluation._repr_html_() and (evaluation.folder / "metrics.json").is_file()

    checked = petal.check(colours / "data", progress=False)
    assert checked.usable and checked.counts == {"blue": 12, "green": 12, "red": 12}
    assert "36 readable images" in checked._repr_html_()

    finding = petal.lr_find(colours / "data", recipe="fast-resnet9", overrides=TINY,
                            cache_dir=colours / "cache", progress=False)
    assert isinstance(finding, petal.LRFinding) and finding.suggestion > 0
    assert isinstance(finding.plot(), Figure) and finding.recipe_lr > 0

    comparison = petal.compare(colours / "data/red/1.png", [api_run, api_run.classifier])
    assert len(comparison.rankings) == 2 and comparison.path is None
    assert comparison.rankings[0].labels == comparison.rankings[1].labels
    explanation = petal.explain(api_run, colours / "data/red/1.png")
    assert explanation.overlaid.shape == explanation.photo.shape
    assert "where it looked" in explanation._repr_html_()
    (colours / "notes.txt").write_text("not a photo")
    with pytest.warns(petal.PetalWarning, match="skipped .*notes.txt"):
        several = petal.explain(api_run, [colours / "data/red/1.png", colours / "notes.txt",
                                          colours / "data/blue/1.png"], out=colours / "ex",
                                reject=False)
    assert [e.path.name for e in several] == ["1.png", "1-2.png"]
    assert all(e.path.is_file() and not e.prediction.unknown for e in several)

    exported = petal.export(api_run, out=colours / "m.onnx")
    assert Path(exported).is_file() and petal.load(exported).classes == api_run.card.classes
    assert "Exported" in exported._repr_html_()
    figures = evaluation.plot()
    assert figures._repr_html_().count("<img") == 2  # a cell's result draws them
    assert figures["reliability.png"]._repr_png_().startswith(b"\x89PNG")


def test_to_pandas_when_pandas_is_there(api_run: petal.Run, monkeypatch) -> None:  # noqa: ANN001
    pandas = pytest.importorskip("pandas")
    assert isinstance(api_run.to_pandas(), pandas.DataFrame)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(petal.PetalError, match="pip install pandas"):
        api_run.to_pandas()


def test_the_library_logs_and_a_program_can_quiet_it(colours: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("petal")
    handlers = logger.handlers
    logger.handlers = [Keep()]
    try:
        petal.train(colours / "data", out=colours / "quiet", recipe="fast-resnet9",
                    overrides={**TINY, "epochs": 1}, folds=0, cache_dir=colours / "cache",
                    progress=False)
    finally:
        logger.handlers = handlers
    assert capsys.readouterr().out == ""
    said = [r.getMessage() for r in records]
    assert any(m.startswith("Training resnet9 with recipe fast-resnet9") for m in said)
    assert any(m.startswith("Done: validation accuracy") for m in said)
    assert all(r.name.startswith("petal.") for r in records)


def test_the_api_and_the_cli_train_alike(api_run: petal.Run, colours: Path) -> None:
    assert main(["train", "--data", str(colours / "data"), "--out", str(colours / "cli"),
                 "--recipe", "fast-resnet9", *[f"--set={k}={v}" for k, v in TINY.items()],
                 "--folds", "0", "--cache-dir", str(colours / "cache"), "--no-progress"]) == 0
    timings = ("epoch_seconds", "elapsed_seconds")
    cli = petal.Run(colours / "cli").history
    assert [{k: v for k, v in row.items() if k not in timings} for row in cli] == \
        [{k: v for k, v in row.items() if k not in timings} for row in api_run.history]


@pytest.mark.parametrize(("call", "message"), [
    (lambda d: petal.train(123), "data: expected a path"),
    (lambda d: petal.train(d / "nowhere"), "does not exist"),
    (lambda d: petal.train(d / "data", folds=1), "folds 1: at least 2"),
    (lambda d: petal.train(d / "data", overrides=5), "overrides: expected"),
    (lambda d: petal.train(d / "data", lr=-1), "lr -1"),
    (lambda d: petal.train(d / "data", recipe="nope"), "unknown recipe"),
    (lambda d: petal.train(d / "data", precision="fp8"), "precision 'fp8'"),
    (lambda d: petal.train(d / "data", out=d / "data" / "run"), "inside the data folder"),
    (lambda d: petal.train(resume=d / "run", lr=0.1), "leave out lr"),
    (lambda d: petal.evaluate(None), "model: expected a path"),
    (lambda d: petal.evaluate(d / "run", part="all"), "part 'all'"),
    (lambda d: petal.lr_find(d / "data", rule="guess"), "rule 'guess'"),
    (lambda d: petal.review(d / "data", folds=1), "folds: expected a whole number"),
    (lambda d: petal.compare(d / "x.jpg", d / "run"), "models: expected a list"),
    (lambda d: petal.export(d / "run", format="tflite"), "unknown export format"),
    (lambda d: petal.run(d / "data", recipes="slow"), "recipes 'slow'"),
    (lambda d: petal.check(d / "data" / "red" / "0.png"), "is not a folder"),
    # a second pass, as a hostile user would: each of these once did work, or left a folder
    (lambda d: petal.train(d / "data", out=d / "x", cache_dir=d / "data" / "cache"),
     "the cache (--cache-dir, $PETAL_CACHE)"),
    (lambda d: petal.train(d / "data", out=d / "x", overrides={"lr": float("nan")}),
     "recipe field lr=nan"),
    (lambda d: petal.train(d / "data", out=d / "x", overrides={"weight_decay": -1}),
     "recipe field weight_decay"),
    (lambda d: petal.train(d / "data", out=d / "x", overrides={"label_smoothing": 2}),
     "recipe field label_smoothing"),
    (lambda d: petal.train(d / "data", out=d / "x", overrides={"input_size": 0}),
     "recipe field input_size=0"),
    (lambda d: petal.train(d / "data", out=d / "x", lr=float("inf")), "lr inf"),
    (lambda d: petal.train(d / "data", out=d / "x", lr=1e9), "lr 1000000000.0"),
    (lambda d: petal.train(d / "data", out=d / "x", accelerator="bogus"), "--accelerator bogus"),
    (lambda d: petal.train(d / "data", out=d / "x", devices=0), "devices: expected"),
    (lambda d: petal.train(d / "data", out=d / "x", devices="abc"), "--devices abc"),
    (lambda d: petal.train(d / "data", out=d / "x", strategy="bogus"), "--strategy bogus"),
    (lambda d: petal.train(d / "data", out=d / "x", accelerator=None), "accelerator: expected"),
    (lambda d: petal.train(d / "data", out=d / "data" / "red" / "0.png"), "is a file"),
    (lambda d: petal.train(resume=d / "data" / "red" / "0.png"), "is not a petal run folder"),
    (lambda d: petal.lr_find(d / "data", recipe=""), "recipe: expected a non-empty str"),
    (lambda d: petal.evaluate(d / "run", tta="no"), "tta: expected True or False"),
    (lambda d: petal.evaluate(d / "run", data=d / "data", class_map={"a": 1}), "class_map"),
    (lambda d: petal.export(d / "run", quantize="no"), "quantize: expected True or False"),
    (lambda d: petal.compare(d / "data/red/0.png", [d / "run"], reject="no"), "reject:"),
    (lambda d: petal.load(d / "run", threads="x"), "threads: expected"),
    (lambda d: petal.load(d / "run", threads=0), "threads: expected"),
    (lambda d: petal.run(d / "data", out=d / "x", transfer_model="nope"), "unknown model 'nope'"),
    (lambda d: petal.run(d / "data", out=d / "x", transfer_overrides={"bogus": 1}), "--set"),
    (lambda d: petal.run(d / "data", out=d / "x", review=d / "no.csv"), "does not exist"),
    (lambda d: petal.run(d / "data", out=d / "run"), "already holds a run"),
    (lambda d: petal.explain(d / "run", d / "data/red/0.png", out=d / "data/red/1.png"),
     "is a file"),
])
def test_bad_input_is_one_petal_error_before_any_work(api_run: petal.Run, colours: Path,
                                                      call, message: str) -> None:  # noqa: ANN001
    before = sorted(colours.rglob("*"))
    with pytest.raises(petal.PetalError, match=re.escape(message)):
        call(colours)
    assert sorted(colours.rglob("*")) == before


def test_a_failed_train_leaves_no_run_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "only" / "a.jpg")
    with pytest.raises(petal.PetalError, match="at least 2 classes|one class"):
        petal.train(tmp_path / "data", out=tmp_path / "deep" / "run", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


