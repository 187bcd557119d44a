"""What `petal data review --out DIR` writes: review.json, review.csv (the decisions to edit),
review.html (the findings as one self-contained page of thumbnails) and contact sheets.

Each likely label mistake shows the photo with the class it is filed under and the class it
looks like; each outlier its distance. Thumbnails are embedded as small JPEGs; the page lists
at most PAGE_LIMIT of each finding (review.csv has them all).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from petal.data.decisions import REVIEW_CSV, write_review_file
from petal.data.review_sheet import ReviewSheet
from petal.fsutil import atomic_write_json, atomic_write_text
from petal.jobs.review import AGREEMENT_IS, Review
from petal.report.figures import plot_gallery, thumbnail

PAGE_LIMIT = 300  # rows of each finding on the page
THUMB_SIDE = 160

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; width: 180px; font-size: 0.85rem; }
figure img { width: 160px; height: 160px; object-fit: contain; background: #f4f4f4; }
figcaption { overflow-wrap: anywhere; } .given { color: #a00; } .suggested { color: #070; }
.muted { color: #666; } code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _thumbnail_uri(path: Path) -> str:
    try:
        image = thumbnail(path, side=THUMB_SIDE)
    except Exception:  # noqa: BLE001 - a file changed since the review: show no picture
        return ""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(root: Path, path: str, caption: str) -> str:
    return (f'<figure><img src="{_thumbnail_uri(root / path)}" alt="{html.escape(path)}">'
            f"<figcaption>{caption}<br><span class=muted>{html.escape(path)}</span>"
            "</figcaption></figure>")


def _section(title: str, found: list[dict], figures: list[str], empty: str) -> str:
    shown = f" (the first {PAGE_LIMIT}; review.csv lists all)" if len(found) > PAGE_LIMIT else ""
    body = f'<div class="grid">{"".join(figures)}</div>' if figures else f"<p>{empty}</p>"
    return f"<h2>{title}: {len(found)}{shown}</h2>{body}"


def write_review_page(result: Review, path: Path) -> Path:
    """Write review.html for `result` (the folder's images must still be where they were)."""
    root = Path(result.root)
    e = html.escape
    def disagreement(item: dict, verb: str) -> str:
        return _figure(root, item["path"], f"filed as <b class=given>{e(item['given'])}</b>, "
                       f"{verb} <b class=suggested>{e(item['suggested'])}</b> (score "
                       f"{item['score']:.2f})")

    issues = [disagreement(i, "looks like") for i in result.label_issues[:PAGE_LIMIT]]
    hard = [disagreement(i, "predicted") for i in result.hard[:PAGE_LIMIT]]
    outliers = [_figure(root, o["path"], f"filed as <b>{e(o['path'].split('/')[0])}</b>, "
                        f"distance {o['score']:.2f}") for o in result.outliers[:PAGE_LIMIT]]
    duplicates = result.duplicates
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>petal data review</title>
<style>{STYLE}</style></head><body>
<h1>Review of {e(result.root)}</h1>
<p>{result.n_images} images in {len(result.classes)} classes. Each image was predicted by a
model that never saw it ({result.folds}-fold out-of-fold); those predictions agree with the
given label for {100 * result.oof_accuracy:.1f} % of the images ({e(AGREEMENT_IS)}).</p>
<p>To act on the findings, open them in the review page
(<code>petal review {e(str(path.parent))}</code>) or set a row's <code>action</code> in
<code>review.csv</code> beside this page to
<code>keep</code>, <code>exclude</code> or <code>relabel</code> (to the class in its
<code>label</code> column), then train with
<code>petal train --review review.csv</code> (or <code>petal data split</code> / <code>petal
run</code> with the same option). Your photo folder is never changed.</p>
{_section("Likely label mistakes, most likely first", result.label_issues, issues,
          "None found.")}
{_section("Hard or ambiguous: the out-of-fold prediction disagrees, less surely", result.hard,
          hard, "None: every other prediction agrees with its label.")}
{_section("Outliers, far from every other image", result.outliers, outliers, "None found.")}
<h2>Copies</h2>
<p>{len(duplicates["exact_duplicates"])} groups of identical files,
{len(duplicates["near_duplicates"])} near-duplicate pairs and
{len(duplicates["label_conflicts"])} copies filed under two classes:
<code>petal data check {e(result.root)}</code> lists them. Splits keep copies together, and
leave out copies filed under two classes.</p>
</body></html>
"""
    atomic_write_text(path, page)
    return path


def _disagreement(item: dict) -> str:
    return f"{item['given']} -> {item['suggested']} ({item['score']:.2f})"


def write_review(result: Review, out: Path) -> list[str]:
    """Into `out`: review.json; review.csv, the file of decisions to edit (keeping the
    decisions and a person's own columns of one already there); review.html, the findings as
    thumbnails; contact sheets of the first label mistakes and outliers."""
    out.mkdir(parents=True, exist_ok=True)
    earlier = ReviewSheet.read(out / REVIEW_CSV) if (out / REVIEW_CSV).exists() else None
    atomic_write_json(out / "review.json", result.to_json())
    write_review_file(out / REVIEW_CSV, result.label_issues, result.outliers, result.hard,
                      earlier.findings() if earlier else [],
                      earlier.own_columns() if earlier else [])
    write_review_page(result, out / "review.html")
    root = Path(result.root)
    sheets = {
        "label_issues.png": ("Likely label mistakes: filed as -> looks like",
                             result.label_issues, _disagreement),
        "hard_cases.png": ("Hard or ambiguous: filed as -> predicted", result.hard,
                           _disagreement),
        "outliers.png": ("Outliers: far from every other image", result.outliers,
                         lambda o: f"{o['path'].split('/')[0]} (distance {o['score']:.2f})")}
    written = [name for name, (_, found, _) in sheets.items() if found]  # no empty sheets
    for name in written:
        title, found, caption = sheets[name]
        plot_gallery([thumbnail(root / item["path"]) for item in found[:16]],
                     [caption(item) for item in found[:16]], out / name,
                     f"{title} ({min(len(found), 16)} of {len(found)})")
    return ["review.json", REVIEW_CSV, "review.html", *written]
