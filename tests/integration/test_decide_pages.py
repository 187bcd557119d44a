"""The review page (`petal review`) and the labelling queue (`petal label`): real servers, the
real command, driven in headless Chromium (Playwright) where the page is what is tested."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS

from conftest import write_image
from petal.data.decisions import read_review_file
from petal.data.new_labels import LABELS_CSV
from petal.data.review_sheet import ReviewSheet
from petal.data.scan import NONE_FOLDER
from petal.jobs.review import Review
from petal.jobs.review_page import write_review

PETAL = str(Path(sys.executable).with_name("petal"))
CLASSES = ["cat", "dog", "fox"]



class PageServer:
    """`petal ARGS` in a process of its own, serving a page; .url has the token."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([PETAL, *args, "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            found = re.search(r"open (http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            if found:
                self.base, self.token = found.groups()
                self.url = f"{self.base}/?token={self.token}"
                # printed once the page answers, not before
                assert httpx.get(f"{self.base}/healthz").status_code == 200
                break
        else:
            raise AssertionError("the page did not start:\n" + "".join(lines))
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # drain

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as when a laptop dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(20)


@pytest.fixture
def review_dir(tmp_path: Path) -> Path:
    """A folder of tiny photos and what `petal data review --out` writes for it: two likely
    label mistakes, a hard photo and an outlier."""
    data = tmp_path / "data"
    for c, label in enumerate(CLASSES):
        for i in range(4):
            write_image(data / label / f"{label}{i}.jpg", seed=100 * c + i, size=(96, 80))
    issues = [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "dog", "score": 0.91},
              {"path": "dog/dog1.jpg", "given": "dog", "suggested": "fox", "score": 0.62}]
    hard = [{"path": "fox/fox2.jpg", "given": "fox", "suggested": "cat", "score": 0.2}]
    outliers = [{"path": "cat/cat3.jpg", "score": 1.4}]
    result = Review(str(data), CLASSES, 12, 5, issues, outliers,
                    {"exact_duplicates": [], "near_duplicates": [], "label_conflicts": []},
                    0.75, hard)
    write_review(result, tmp_path / "review")
    return tmp_path / "review"


def decisions_of(review_dir: Path) -> dict[str, tuple[str, str]]:
    return {row["path"]: (row["action"], row["label"] if row["action"] == "relabel" else "")
            for row in ReviewSheet.read(review_dir / "review.csv").findings()}


@pytest.fixture
def browser() -> Iterator:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str):  # noqa: ANN001, ANN201 - Playwright's objects
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    page.goto(url)
    page.wait_for_selector("#list li")
    page.wait_for_function("document.querySelector('#photo').naturalWidth > 0")
    assert failed == []
    return page


def wait_saved(page, text: str) -> None:  # noqa: ANN001
    page.wait_for_function(f"document.querySelector('#saved').textContent.includes({text!r})")


def test_review_page_decides_by_click_and_key_and_reload_keeps_them(
        browser, review_dir: Path, tmp_path: Path) -> None:
    server = PageServer("review", str(review_dir))
    try:
        page = open_page(browser, server.url)
        assert page.locator("#progress").text_content() == "0 of 4 decided"
        assert page.locator("#list li").count() == 4
        assert "Filed as cat, looks like dog (score 0.91)" in page.locator("#lines").text_content()
        assert page.locator("#classes button.suggested").text_content().startswith("dog")

        page.get_by_role("button", name="Exclude").click()  # cat0: by click
        wait_saved(page, "cat/cat0.jpg excluded")
        assert decisions_of(review_dir)["cat/cat0.jpg"] == ("exclude", "")
        assert "dog/dog1.jpg" in page.locator("#where").text_content()  # on to the next
        page.keyboard.press("u")  # takes back the decision just made, and goes back to it
        wait_saved(page, "cat/cat0.jpg taken back")
        assert decisions_of(review_dir)["cat/cat0.jpg"] == ("", "")
        assert "cat/cat0.jpg" in page.locator("#where").text_content()
        page.keyboard.press("x")
        wait_saved(page, "cat/cat0.jpg excluded")
        page.keyboard.press("Enter")  # dog1: relabel as the suggested fox, by key
        wait_saved(page, "dog/dog1.jpg relabelled as fox")
        page.keyboard.press("1")  # fox2: relabel as the first class, cat
        wait_saved(page, "fox/fox2.jpg relabelled as cat")
        page.keyboard.press("k")  # cat3: keep
        wait_saved(page, "cat/cat3.jpg kept")
        assert page.locator("#progress").text_content() == "4 of 4 decided: all done"
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        page.keyboard.press("u")  # take the last back
        wait_saved(page, "cat/cat3.jpg taken back")

        page.reload()
        page.wait_for_selector("#list li")
        assert page.locator("#progress").text_content() == "3 of 4 decided"
        assert page.locator("#list li.decided").count() == 3
        # reopened where the work stopped: at the first photo not decided, not at photo 1
        assert "cat/cat3.jpg" in page.locator("#where").text_content()
        assert "not decided" in page.locator("#state").text_content()
        page.locator("#filters button", has_text="Not decided").click()
        assert page.locator("#list li").count() == 1
    finally:
        server.stop()
    assert decisions_of(review_dir) == {"cat/cat0.jpg": ("exclude", ""),
                                        "dog/dog1.jpg": ("relabel", "fox"),
                                        "fox/fox2.jpg": ("relabel", "cat"),
                                        "cat/cat3.jpg": ("", "")}
    # what `petal train --review` reads
    labels = {f"{c}/{c}{i}.jpg": c for c in CLASSES for i in range(4)}
    decided = read_review_file(review_dir / "review.csv", CLASSES, labels)
    assert decided.excluded == ("cat/cat0.jpg",)
    assert decided.relabelled == {"dog/dog1.jpg": "fox", "fox/fox2.jpg": "cat"}


def test_a_killed_server_loses_no_decision(browser, review_dir: Path) -> None:
    server = PageServer("review", str(review_dir))
    page = open_page(browser, server.url)
    page.keyboard.press("x")
    wait_saved(page, "excluded")
    server.kill()  # right after the page said saved
    assert decisions_of(review_dir)["cat/cat0.jpg"] == ("exclude", "")

    # decisions posted as fast as they go, the server killed in the middle of them
    server = PageServer("review", str(review_dir))
    acknowledged: list[str] = []
    refused: list[int] = []

    def post_decisions() -> None:
        with httpx.Client(headers={"X-Petal-Token": server.token}) as client:
            for n in range(10_000):
                action = ("keep", "exclude")[n % 2]
                try:
                    answer = client.post(f"{server.base}/api/decide",
                                         json={"key": "dog/dog1.jpg", "action": action})
                except httpx.HTTPError:
                    return
                if answer.status_code != 200:
                    refused.append(answer.status_code)
                acknowledged.append(action)

    poster = threading.Thread(target=post_decisions)
    poster.start()
    while len(acknowledged) < 20:
        poster.join(0.01)
    server.kill()
    poster.join(30)
    assert refused == []
    now = decisions_of(review_dir)  # the file is whole and parses
    assert len(now) == 4
    in_flight = ("keep", "exclude")[len(acknowledged) % 2]
    assert now["dog/dog1.jpg"][0] in {acknowledged[-1], in_flight}
    assert now["cat/cat0.jpg"] == ("exclude", "")

    server = PageServer("review", str(review_dir))  # reopened: the decisions are there
    try:
        page = open_page(browser, server.url)
        assert page.locator("#progress").text_content() == "2 of 4 decided"
    finally:
        server.stop()


def test_a_second_page_on_one_folder_is_refused(review_dir: Path) -> None:
    """Two servers writing one review.csv would each lose the other's decisions."""
    server = PageServer("review", str(review_dir))
    try:
        second = subprocess.run([PETAL, "review", str(review_dir)], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1
        assert f"is in use by process {server.process.pid}" in second.stderr
    finally:
        server.stop()


def test_the_token_is_required(review_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes((review_dir.parent / "data/cat/cat1.jpg").read_bytes())
    server = PageServer("review", str(review_dir))
    try:
        before = (review_dir / "review.csv").read_bytes()
        base = server.base
        for path in ["/", "/api/items", "/api/photo?key=cat/cat0.jpg"]:
            assert httpx.get(base + path).status_code == 403
            assert httpx.get(f"{base}{path}{'&' if '?' in path else '?'}token=wrong"
                             ).status_code == 403
        refused = httpx.post(f"{base}/api/decide", json={"key": "cat/cat0.jpg",
                                                         "action": "exclude"})
        assert refused.status_code == 403
        assert "token" in refused.json()["detail"]
        # a form another site posts, even knowing the token, and a rebound host name
        assert httpx.post(f"{base}/api/decide?token={server.token}", json={
            "key": "cat/cat0.jpg", "action": "exclude"},
            headers={"Origin": "https://evil.example"}).status_code == 403
        assert httpx.get(f"{base}/api/items?token={server.token}",
                         headers={"Host": "evil.example"}).status_code == 403
        assert (review_dir / "review.csv").read_bytes() == before

        ok = {"X-Petal-Token": server.token}
        assert httpx.get(f"{base}/api/items", headers=ok).status_code == 200
        photo = httpx.get(f"{base}/api/photo?key=cat/cat0.jpg&size=small&token={server.token}")
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        # only the photos the review names, from inside the reviewed folder
        for key in ["cat/cat1.jpg", "../secret.jpg", "/etc/passwd", "cat/../../secret.jpg"]:
            answer = httpx.get(f"{base}/api/photo", params={"key": key}, headers=ok)
            assert answer.status_code == 422, key
        bad = [{"key": "cat/cat0.jpg", "action": "delete"},
               {"key": "cat/cat0.jpg", "action": "relabel", "label": "wolf"},
               {"key": "cat/cat1.jpg", "action": "exclude"}, {"key": "x"}]
        for body in bad:
            answer = httpx.post(f"{base}/api/decide", json=body, headers=ok)
            assert answer.status_code == 422, body
        huge = {"key": "cat/cat0.jpg", "action": "keep", "label": "x" * 2**20}
        assert httpx.post(f"{base}/api/decide", json=huge, headers=ok).status_code == 413
        assert (review_dir / "review.csv").read_bytes() == before
    finally:
        server.stop()


def test_a_review_file_that_names_a_path_outside_the_folder_serves_nothing(
        review_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.jpg").write_bytes(
        (review_dir.parent / "data/cat/cat1.jpg").read_bytes())
    with open(review_dir / "review.csv", "a") as sheet:
        sheet.write("../outside.jpg,outlier,cat,,1.0,,cat\n")
        sheet.write("cat/cat1.jpg\0.png,outlier,cat,,1.0,,cat\n")  # a NUL byte
    server = PageServer("review", str(review_dir))
    try:
        for key in ["../outside.jpg", "cat/cat1.jpg\0.png"]:
            answer = httpx.get(f"{server.base}/api/photo", params={"key": key},
                               headers={"X-Petal-Token": server.token})
            assert answer.status_code == 422, answer.text
            assert "not a path inside the data folder" in answer.json()["detail"]
    finally:
        server.stop()


def test_every_class_can_be_picked_by_typing_when_there_are_more_than_nine(
        browser, tmp_path: Path) -> None:
    classes = [f"class{i:02d}" for i in range(10)] + ["viola", "violet"]
    data = tmp_path / "data"
    for c, label in enumerate(classes):
        write_image(data / label / f"{label}0.jpg", seed=c, size=(96, 80))
    issues = [{"path": f"{c}/{c}0.jpg", "given": c, "suggested": "class00", "score": 0.5}
              for c in classes[:4]]
    write_review(Review(str(data), classes, 12, 5, issues, [], {"exact_duplicates": [],
                        "near_duplicates": [], "label_conflicts": []}, 0.5, []),
                 tmp_path / "review")
    server = PageServer("review", str(tmp_path / "review"))
    try:
        page = open_page(browser, server.url)
        assert "/ then a few letters" in page.locator("#keys").text_content()
        page.keyboard.press("/")
        page.keyboard.type("violet")  # the 12th class: no digit reaches it
        page.keyboard.press("Enter")
        wait_saved(page, "class00/class000.jpg relabelled as violet")
        page.keyboard.press("/")
        page.keyboard.type("vio")  # two classes start so: nothing is decided
        page.keyboard.press("Enter")
        assert 'no single class is named or starts with "vio"' in page.locator(
            "#error").text_content()
        page.keyboard.type("CLASS09")  # replaces the refused text; case aside
        page.keyboard.press("Enter")
        wait_saved(page, "class01/class010.jpg relabelled as class09")
        page.keyboard.press("k")  # keys still act once the box is left
        wait_saved(page, "class02/class020.jpg kept")
    finally:
        server.stop()
    assert decisions_of(tmp_path / "review") == {"class00/class000.jpg": ("relabel", "violet"),
                                                 "class01/class010.jpg": ("relabel", "class09"),
                                                 "class02/class020.jpg": ("keep", ""),
                                                 "class03/class030.jpg": ("", "")}


@pytest.fixture
def unlabelled(colour_run: Path, tmp_path: Path) -> Path:
    """Photos to label for colour_run (red and blue squares): new reds and blues, two green
    ones, and a file that is no image."""
    from conftest import colour_photos

    photos = tmp_path / "unlabelled"
    colour_photos(photos / "batch1", "x", (201, 30, 30), 3)  # the training colours, other
    colour_photos(photos / "batch2", "x", (30, 40, 201), 3)  # noise (seeded by the colour)
    colour_photos(photos, "greens", (30, 190, 40), 2)
    (photos / "notes.txt").write_text("not a photo")
    return photos


def listing(folder: Path) -> list[tuple[str, int, float]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*"))


def test_label_queue_accept_pick_none_reload_then_retrain(
        browser, colour_run: Path, unlabelled: Path, tmp_path: Path) -> None:
    before = listing(unlabelled)
    new = tmp_path / "new"
    original = colour_run.parent / "data"
    server = PageServer("label", str(unlabelled), "--model", str(colour_run), "--out", str(new),
                        "--data", str(original), "--no-progress")
    try:
        page = open_page(browser, server.url)
        assert page.locator("#progress").text_content() == "0 of 8 decided"
        # the photos called unknown come after the others (checked below)
        assert page.locator("#actions button.suggested").count() == 0
        first = page.locator("#where").text_content().split(": ", 1)[1]
        guess = page.locator("#classes button.suggested").get_attribute("data-label")
        page.keyboard.press("Enter")  # accept the guess
        wait_saved(page, f"{first} labelled {guess}")
        second = page.locator("#where").text_content().split(": ", 1)[1]
        page.keyboard.press("0")  # none of these
        wait_saved(page, f"{second} none of these")
        third = page.locator("#where").text_content().split(": ", 1)[1]
        page.locator("#classes button[data-label='blue']").click()
        wait_saved(page, f"{third} labelled blue")
        page.screenshot(path=str(tmp_path / "label.png"), full_page=True)
        page.reload()
        page.wait_for_selector("#list li")
        assert page.locator("#progress").text_content() == "3 of 8 decided"
        assert page.locator("#list li").count() == 5  # "to label" first
    finally:
        server.stop()
    assert listing(unlabelled) == before  # the photos are never written
    links = {p.relative_to(new).parts[0] for p in new.rglob("*") if p.is_symlink()
             and not p.resolve().is_relative_to(original.resolve())}
    assert links == {guess, "blue", NONE_FOLDER}  # none of these: kept apart, not a class
    rows = (new / LABELS_CSV).read_text().splitlines()
    assert rows[0] == "source,sha256,decision,label" and len(rows) == 4
    assert sum(1 for p in new.rglob("*") if p.is_symlink()) == 40 + 3  # old photos + new

    # reopened, the queue goes on where it stopped: the decided photos come last
    server = PageServer("label", str(unlabelled), "--model", str(colour_run), "--out", str(new),
                        "--no-progress")
    try:
        items = httpx.get(f"{server.base}/api/items",
                          headers={"X-Petal-Token": server.token}).json()["items"]
        assert [bool(i["action"]) for i in items] == [False] * 5 + [True] * 3
        # the green photos, of neither class, are offered as none of these, no class guessed,
        # after the photos the model hesitates over
        offered_none = {i["name"] for i in items if i["suggested_action"] == "none"}
        assert {"greens/0.png", "greens/1.png"} <= offered_none
        kinds = [i["suggested_action"] for i in items if not i["action"]]
        assert kinds == sorted(kinds)  # "" before "none": the photos called unknown last
        assert all(i["suggested"] == "" for i in items if i["suggested_action"] == "none")
        page = open_page(browser, server.url)
        page.locator("#filters button", has_text="All, in queue order").click()
        green = next(i for i, item in enumerate(items) if item["suggested_action"] == "none")
        page.locator("#list li").nth(green).click()
        assert "Enter files it as none of these" in page.locator("#lines").text_content()
        assert page.locator("#actions button.suggested").text_content().startswith("None")
        page.keyboard.press("Enter")
        wait_saved(page, f"{items[green]['name']} none of these")
    finally:
        server.stop()

    from petal.cli import main

    assert main(["train", "--data", str(new), "--recipe", "fast-resnet9", "--set",
                 "width=0.125", "--set", "input_size=32", "--set", "epochs=2", "--folds", "0",
                 "--out", str(tmp_path / "retrained"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"]) == 0
    # the photos filed as none of these checked the retrained model's unknown threshold
    filed_none = (new / LABELS_CSV).read_text().count(",none,")
    card = json.loads((tmp_path / "retrained/model/model.json").read_text())
    assert card["novelty"]["none_photos"]["at_keep"]["n_none"] == filed_none >= 1


def test_label_refuses_to_write_into_the_photos(colour_run: Path, unlabelled: Path) -> None:
    for out in [unlabelled / "new", unlabelled]:
        done = subprocess.run([PETAL, "label", str(unlabelled), "--model", str(colour_run),
                               "--out", str(out), "--no-progress"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1
        assert "overlap" in done.stderr
    assert not (unlabelled / "new").exists()
