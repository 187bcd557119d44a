"""The page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import petal
from petal.serve.app import create_app
from petal.serve.served import load_models
from petal.serve.server import BackgroundServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.skipif(not CHROMIUM.is_file(),
                                 reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


def correctly_classified_photo(run: Path) -> tuple[Path, str]:
    """A training photo of `run` that its model labels correctly, and that label."""
    classifier = petal.load(run)
    for folder in sorted((run.parent / "data").iterdir()):
        photos = sorted(folder.iterdir())[:10]
        for photo, prediction in zip(photos, classifier.predict(photos)):
            if prediction.label == folder.name:
                return photo, folder.name
    raise AssertionError(f"the model of {run} gets none of the photos tried right")


@pytest.fixture(scope="module")
def page_url(flowers_run: Path, tiny_run: Path, colour_run: Path, small_cv_run: Path
             ) -> Iterator[str]:
    models = load_models([f"flowers={flowers_run}", f"tiny={tiny_run}",
                          f"colours={colour_run}", f"small={small_cv_run}"])
    with BackgroundServer(create_app(models)) as url:
        yield url


@pytest.fixture
def page(page_url: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            page.goto(page_url)
            page.wait_for_selector(".model[data-model='tiny']")
            assert failed == []  # the page, its script's requests and the favicon: no 404
            yield page
        finally:
            browser.close()


def test_upload_shows_each_models_bars(page, flowers_run: Path, tmp_path: Path) -> None:
    photo, label = correctly_classified_photo(flowers_run)
    page.set_input_files("#file", str(photo))
    flowers_bars = page.locator(".model[data-model='flowers'] .bar")
    tiny_bars = page.locator(".model[data-model='tiny'] .bar")
    flowers_bars.first.wait_for()
    tiny_bars.first.wait_for()
    assert flowers_bars.count() == 5 and tiny_bars.count() == 3  # top 5, of 5 and of 3 classes
    assert flowers_bars.first.locator(".label").text_content() == label
    assert tiny_bars.first.locator(".label").text_content() in {"cat", "dog", "fox"}
    widths = [bar.evaluate("el => el.getBoundingClientRect().width")
              for bar in flowers_bars.locator(".fill").all()]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    assert page.locator("#error").is_hidden()
    assert page.locator("#preview").is_visible()

    screenshot = tmp_path / "page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > 20_000
    with Image.open(screenshot) as image:
        assert image.width >= 1000 and image.height >= 400


def test_each_model_says_how_its_accuracy_was_measured_and_on_how_many(
        page, tiny_run: Path, small_cv_run: Path) -> None:
    """A figure from a few dozen photos comes with their number and its interval."""
    held_out = petal.load(tiny_run).card.accuracy
    meta = page.locator(".model[data-model='tiny'] .meta").text_content()
    assert (f"validation accuracy {100 * held_out['value']:.1f}% ({held_out['correct']} of "
            f"{held_out['n']} photos, 95% interval ") in meta
    crossed = petal.load(small_cv_run).card.accuracy
    meta = page.locator(".model[data-model='small'] .meta").text_content()
    assert (f"cross-validated accuracy {100 * crossed['value']:.1f}% ({crossed['correct']} of "
            f"24 photos, 95% interval {100 * crossed['interval'][0]:.1f}-") in meta


def test_non_image_shows_the_servers_message(page) -> None:
    page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain",
                                   "buffer": b"these are not pixels\n"})
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "notes.txt" in error.text_content()
    assert "not an image file" in error.text_content()  # the server's detail
    assert page.locator(".bar").count() == 0


def test_unknown_photo_is_said_plainly(page, colour_run: Path, tmp_path: Path) -> None:
    card = page.locator(".model[data-model='colours']")
    page.set_input_files("#file", str(colour_run.parent / "other" / "green" / "0.png"))
    card.locator(".bar").first.wait_for()
    verdict = card.locator(".verdict")
    assert verdict.is_visible()
    assert "does not look like any class this model knows" in verdict.text_content()
    page.screenshot(path=str(tmp_path / "unknown.png"), full_page=True)
    page.set_input_files("#file", str(colour_run.parent / "data" / "red" / "0.png"))
    card.locator(".bar").first.wait_for()
    page.wait_for_function("!document.querySelector(\".model[data-model='colours']\")"
                           ".classList.contains('unknown')")
    assert verdict.is_hidden()


def test_show_where_it_looked(page, colour_run: Path, tmp_path: Path) -> None:
    card = page.locator(".model[data-model='colours']")
    page.set_input_files("#file", str(colour_run.parent / "data" / "blue" / "0.png"))
    card.locator(".bar").first.wait_for()
    assert card.locator(".explanation").is_hidden()  # off by default
    card.locator(".looked input").check()
    card.locator(".explanation").wait_for(state="visible")
    assert card.locator(".explanation").get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator(".model[data-model='flowers'] .explanation").is_hidden()
    page.screenshot(path=str(tmp_path / "looked.png"), full_page=True)


def test_a_phone_takes_a_photo_and_reads_the_answer(flowers_run: Path, tmp_path: Path) -> None:
    """Served to the network (behind its token), on a phone-sized touch screen: the camera
    one tap away, the answer large enough to read at arm's length."""
    from playwright.sync_api import sync_playwright

    from petal.serve.local_page import TokenRequired

    token = "a-phone-token-for-this-test"
    app = TokenRequired(create_app(load_models([f"flowers={flowers_run}"])), token,
                        loopback_only=False)
    photo, label = correctly_classified_photo(flowers_run)
    with BackgroundServer(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     device_scale_factor=2, is_mobile=True, has_touch=True)
            phone.goto(url)  # without the token: refused, and it says how to get in
            assert "needs its token" in phone.content()
            phone.goto(f"{url}/?token={token}")
            phone.wait_for_selector(".model[data-model='flowers']")
            camera = phone.locator("#camera")
            assert camera.get_attribute("capture") == "environment"
            assert phone.locator("#camera-button").is_visible()
            phone.set_input_files("#camera", str(photo))
            answer = phone.locator("#answer")
            answer.wait_for(state="visible")
            assert answer.text_content().startswith(label)
            size = float(answer.evaluate("el => getComputedStyle(el).fontSize")[:-2])
            assert size >= 36  # px: a headline on a phone
            box = answer.bounding_box()
            assert box["width"] <= 390 and box["y"] < 844 * 2  # on the screen, not beside it
            phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        finally:
            browser.close()
