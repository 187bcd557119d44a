"""`petal run`, the main job: every step on a slice of the real data, and its report in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FLOWERS, flowers_slice, write_image
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
                 str(root / "cache"), "--no-lr-find", *QUICK]) == 0
    return out


def test_main_job_writes_every_part(main_run: Path) -> None:
    for name in ["data_check.json", "split.json", "timings.json", "report.html",
                 "predictions_scratch.png", "predictions_transfer.png", "compare_1.png"]:
        assert (main_run / name).is_file(), name
    for role in ("scratch", "transfer"):
        for name in ["history.csv", "accuracy.png", "model/model.json",
                     "eval/metrics.json", "eval/confusion_matrix.png"]:
            assert (main_run / role / name).is_file(), f"{role}/{name}"
        assert not (main_run / role / "lr_find.png").exists()  # --no-lr-find
    assert "Not run (<code>--no-lr-find</code>)" in (main_run / "report.html").read_text()
    timings = read_json(main_run / "timings.json")
    comparison = timings["comparison"]  # which model to use, tested on the same photos
    split = read_json(main_run / "split.json")  # 10 validation photos: both cross-validated,
    n_all = len(split["train"]) + len(split["val"])  # so compared on every photo out of fold
    assert comparison["photos"] == n_all == 60 and sum(comparison["only_right"].values()) <= 60
    assert "each judged by models that never saw it" in comparison["verdict"]
    assert comparison["verdict"] in (main_run / "report.html").read_text()
    roles = timings["roles"]
    assert roles["transfer"]["model"] == "efficientnet_lite0"
    assert roles["scratch"]["recipe"]["name"] == "fast-resnet9"
    # each model's time is its own, not counted from the start of the job
    assert roles["scratch"]["train_seconds"] + roles["transfer"]["train_seconds"] \
        < timings["total_seconds"]


def test_report_renders_without_lightning(main_run: Path, tmp_path: Path) -> None:
    """report/ reads the run folder's files alone: rendering imports no Lightning."""
    copy = tmp_path / "run"
    shutil.copytree(main_run, copy, symlinks=True)
    (copy / "report.html").unlink()
    script = ("import sys; from pathlib import Path\n"
              "from petal.report.html import write_report\n"
              f"write_report(Path({str(copy)!r}))\n"
              "print(any(m.split('.')[0] == 'lightning' for m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    # the same page, up to the timings (timings.json gained the first rendering's time)
    before_timings = [(run / "report.html").read_text().split('<section id="timings">')[0]
                      for run in (copy, main_run)]
    assert before_timings[0] == before_timings[1]


def test_existing_main_run_is_not_overwritten(main_run: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--data", str(main_run.parent / "data"), "--out", str(main_run),
                 *QUICK]) == 1
    assert "already holds a run: choose another --out" in capsys.readouterr().err


@pytest.fixture(scope="module")
def main_run_30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main job on 30 classes of synthetic photos (6 each, names of varied length), with
    the LR finder: what a report must stay readable at."""
    root = tmp_path_factory.mktemp("main30")
    for c in range(30):
        name = f"species_{c:02d}" + "_longer_name" * (c % 3)
        for i in range(6):
            write_image(root / "data" / name / f"{i}.jpg", seed=1000 * c + i, size=(96, 80))
    out = root / "run"
    review = root / "review.csv"
    review.write_text("path,action,label\nspecies_00/0.jpg,exclude,\n"
                      "species_01_longer_name/1.jpg,relabel,species_02_longer_name_longer_name\n")
    assert main(["run", "--data", str(root / "data"), "--out", str(out), "--cache-dir",
                 str(root / "cache"), "--review", str(review), *QUICK]) == 0
    return out


def test_main_job_applies_the_review(main_run_30: Path) -> None:
    for split_file in (main_run_30 / "split.json", main_run_30 / "transfer" / "split.json"):
        split = json.loads(split_file.read_text())
        labels = {i["path"]: i["label"] for part in ("train", "val") for i in split[part]}
        assert "species_00/0.jpg" not in labels and len(labels) == 179
        assert labels["species_01_longer_name/1.jpg"] == "species_02_longer_name_longer_name"


def test_lr_finder_shown_by_default(main_run_30: Path) -> None:
    """Both models' range tests, each with its suggestion and the rate the recipe used."""
    page = (main_run_30 / "report.html").read_text()
    for role in ("scratch", "transfer"):
        assert (main_run_30 / role / "lr_find.png").is_file()
        info = read_json(main_run_30 / "timings.json")["roles"][role]
        assert info["lr_suggested"] > 0
        assert f"Suggested LR {info['lr_suggested']:.2e}; the recipe trains at " \
            f"{info['recipe']['lr']:.2e}" in page
    assert "Not run" not in page


@pytest.mark.parametrize("which", ["main_run", "main_run_30"])
def test_report_is_readable_in_chromium(which: str, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    """Figures shown at (nearly) the size they were drawn, a click opens them full size, and
    the page stays small; at 5 classes (real photos) and at 30."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    run = request.getfixturevalue(which)
    report = tmp_path / "report.html"  # self-contained: it works away from its run folder
    shutil.copy(run / "report.html", report)
    assert report.stat().st_size < 3 * 2**20
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(report.as_uri())
        sections = page.evaluate("Array.from(document.querySelectorAll('section h2'))"
                                 ".map(h => h.textContent)")
        scales = page.evaluate("Array.from(document.querySelectorAll('#evaluation img'))"
                               ".map(i => i.clientWidth / i.naturalWidth)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        page.click("#evaluation img >> nth=0")  # the first model's confusion matrix
        zoomed = page.evaluate("(() => { const i = document.querySelector('#zoom img');"
                               " return [document.getElementById('zoom').className,"
                               " i.clientWidth, i.naturalWidth]; })()")
        page.screenshot(path=str(tmp_path / "zoomed.png"))
        browser.close()
    assert sections == list(SECTIONS.values())
    assert len(scales) == 6 and 0.75 <= min(scales) and max(scales) <= 1.0, scales
    assert zoomed[0] == "open" and zoomed[1] == zoomed[2] > 0
