"""`petal run`, the main job: every step on a slice of the real data, and its report in Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FLOWERS, flowers_slice
from petal.cli import main
from petal.fsutil import read_json
from petal.report.html import SECTIONS

CHROMIUM = Path("/usr/bin/chromium")
# The real recipes, shortened: ResNet9 at 1/8 width on 32 px, EfficientNet-Lite0 at 64 px.
QUICK = ["--set-scratch", "width=0.125", "--set-scratch", "input_size=32",
         "--set-scratch", "epochs=2", "--set-transfer", "input_size=64",
         "--set-transfer", "epochs=2", "--set-scratch", "batch_size=16",
         "--set-transfer", "batch_size=16", "--no-progress"]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FLOWERS.is_dir():
        pytest.skip(f"the flowers data set is not at {FLOWERS} (set PETAL_FLOWERS)")
    root = tmp_path_factory.mktemp("main")
    data = flowers_slice(root / "data", 12)
    out = root / "run"
    assert main(["run", "--data", str(data), "--out", str(out), "--cache-dir",
                 str(root / "cache"), *QUICK]) == 0
    return out


def test_main_job_writes_every_part(main_run: Path) -> None:
    for name in ["data_check.json", "split.json", "timings.json", "report.html",
                 "predictions_scratch.png", "predictions_transfer.png", "compare_1.png"]:
        assert (main_run / name).is_file(), name
    for role in ("scratch", "transfer"):
        for name in ["lr_find.png", "history.csv", "accuracy.png", "model/model.json",
                     "eval/metrics.json", "eval/confusion_matrix.png"]:
            assert (main_run / role / name).is_file(), f"{role}/{name}"
    timings = read_json(main_run / "timings.json")
    assert timings["roles"]["transfer"]["model"] == "efficientnet_lite0"
    assert timings["roles"]["scratch"]["recipe"]["name"] == "fast-resnet9"
    assert timings["total_seconds"] > sum(timings["steps"].values()) * 0.99
    assert timings["machine"]["cores"] >= 1


def test_existing_main_run_is_not_overwritten(main_run: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--data", str(main_run.parent / "data"), "--out", str(main_run),
                 *QUICK]) == 1
    assert "already holds" in capsys.readouterr().err


def test_report_renders_in_chromium(main_run: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"  # self-contained: it works away from its run folder
    shutil.copy(main_run / "report.html", report)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(report.as_uri())
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        sections = page.evaluate("Array.from(document.querySelectorAll('section h2'))"
                                 ".map(h => h.textContent)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    # LR finder, 3 curves, 3 evaluation figures per model; 2 prediction figures; comparisons
    assert len(widths) >= 2 * 7 + 2 + 1 and min(widths) > 0
    assert sections == list(SECTIONS.values())
    assert (tmp_path / "report.png").stat().st_size > 50_000
