"""report.html: one self-contained page (images embedded) for a `petal run` folder.

Figures are shown no larger than they were drawn and open at full size on a click; large
ones (photos, big matrices) are embedded as WebP at quality 90, a sixth to a half of their
PNG size here, so the page stays a few megabytes at 50 classes. Numbers: accuracies and
probabilities in percent with one decimal, learning rates in scientific notation, losses
with four decimals.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from petal.fsutil import atomic_write_text, read_json
from petal.run_folder import (
    CURVES,
    DATA_CHECK_FILE,
    EVAL_DIR,
    EVAL_FIGURES,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    LR_FIND_PLOT,
    METRICS_FILE,
    REPORT_FILE,
    SPLIT_FILE,
    TIMINGS_FILE,
    read_history,
)
from petal.stats import FEW_PHOTOS, describe_accuracy

ROLE_TITLES = {"scratch": "From scratch", "transfer": "Pretrained transfer"}
SECTIONS = {"data": "Data", "lr-finder": "Learning-rate finder", "training": "Training",
            "evaluation": "Evaluation", "comparison": "Side by side", "timings": "Timings",
            "machine": "Machine"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.pair { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
.pair > div { flex: 1 1 520px; min-width: 0; } .wide > div { flex-basis: 100%; }
img { max-width: 100%; border: 1px solid #eee; cursor: zoom-in; }
.muted { color: #666; } nav a { margin-right: 1rem; } .scroll { overflow-x: auto; }
td { white-space: nowrap; }
#zoom { position: fixed; inset: 0; background: rgba(0,0,0,.8); overflow: auto; cursor: zoom-out;
        display: none; } #zoom.open { display: block; }
#zoom img { max-width: none; margin: 1rem auto; display: block; background: white; }
"""

# Click any figure to see it at full size; click again (or Escape) to close.
ZOOM = """<div id="zoom" role="dialog" aria-label="figure at full size"><img alt=""></div>
<script>
const zoom = document.getElementById("zoom"), big = zoom.querySelector("img");
document.querySelectorAll("section img").forEach(img => img.addEventListener("click", () => {
  big.src = img.src; big.alt = img.alt; zoom.classList.add("open"); }));
zoom.addEventListener("click", () => zoom.classList.remove("open"));
document.addEventListener("keydown", e => {
  if (e.key === "Escape") zoom.classList.remove("open"); });
</script>"""

LOSSY_FROM_BYTES = 150_000  # PNGs larger than this are tried as WebP


def _embedded(png: bytes) -> tuple[str, bytes]:
    """(MIME type, bytes) to embed: the PNG, or a WebP of it when that saves a quarter."""
    if len(png) < LOSSY_FROM_BYTES:
        return "image/png", png
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, "WEBP", quality=90)
    webp = buffer.getvalue()
    return ("image/webp", webp) if len(webp) < 0.75 * len(png) else ("image/png", png)


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f'<p class="muted">({html.escape(path.name)} missing)</p>'
    png = path.read_bytes()
    with Image.open(io.BytesIO(png)) as image:  # the header only: the width drawn
        width = image.width
    mime, data = _embedded(png)
    return (f'<img src="data:{mime};base64,{base64.b64encode(data).decode()}" '
            f'alt="{html.escape(alt)}" style="width: {width}px">')


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'



def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "-" if value is None else str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def _decimals(places: int) -> Callable[[float], str]:
    """A column's format: `places` decimals, "-" for a value not measured (NaN)."""
    return lambda value: "-" if math.isnan(value) else f"{value:.{places}f}"


# How each history column is headed and reads: accuracies in percent, the LR in scientific
# notation.
HISTORY_FORMAT = {"epoch": ("epoch", str), "train_loss": ("train loss", _decimals(4)),
                  "val_loss": ("val loss", _decimals(4)), "val_acc": ("val acc", _percent),
                  "lr": ("LR", "{:.2e}".format), "epoch_seconds": ("s", "{:.1f}".format),
                  "elapsed_seconds": ("total s", "{:.1f}".format)}


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{SECTIONS[key]}</h2>{body}</section>'


def _data_section(run: Path) -> str:
    check = read_json(run / DATA_CHECK_FILE)
    split = read_json(run / SPLIT_FILE)
    counts = split["counts"]
    rows = [[name, check["counts"][name], counts["train"][name], counts["val"][name]]
            for name in check["classes"]]
    rows.append(["total", check["n_images"], sum(counts["train"].values()),
                 sum(counts["val"].values())])
    size = check["image_size"].get("shorter_side", {})
    notes = [
        f"{len(check['rejected'])} file(s) not used",
        f"{len(check['exact_duplicates'])} group(s) of exact duplicates",
        f"{len(check['label_conflicts'])} identical file(s) filed under two classes, left out "
        f"({len(split['excluded_conflicts'])} files)",
        f"{len(check['near_duplicates'])} near-duplicate pair(s) (pHash distance <= "
        f"{check['near_duplicate_max_distance']}), kept on one side of the split",
        f"shorter side: min {size.get('min')}, median {size.get('median')}, "
        f"max {size.get('max')} px",
    ]
    return _section("data", f"<p>{html.escape(check['root'])}, split seed {split['seed']}</p>"
                    + _table(["class", "images", "train", "validation"], rows)
                    + "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")


def _per_role(run: Path, summary: dict, render, wide: bool = False) -> str:
    """Each model's part side by side, or one under the other (`wide`) for large figures."""
    return f'<div class="pair{" wide" if wide else ""}">' + "".join(
        f"<div><h3>{ROLE_TITLES[role]}: {html.escape(info['model'])} "
        f"<span class='muted'>({html.escape(info['recipe']['name'])})</span></h3>"
        f"{render(run / role, info)}</div>"
        for role, info in summary["roles"].items()) + "</div>"


def _lr_finder(role_dir: Path, info: dict) -> str:
    if not (role_dir / LR_FIND_PLOT).is_file():
        return (f"<p class='muted'>Not run (<code>--no-lr-find</code>); the recipe trains at "
                f"{info['recipe']['lr']:.2e}.</p>")
    suggested = info["lr_suggested"]
    said = f"Suggested LR {suggested:.2e}" if suggested else "No clear suggestion"
    return (_image(role_dir / LR_FIND_PLOT, "learning-rate finder")
            + f"<p>{said}; the recipe trains at {info['recipe']['lr']:.2e}.</p>")


def _training(role_dir: Path, info: dict) -> str:
    rows = [[HISTORY_FORMAT[k][1](int(r[k]) if k == "epoch" else r[k]) for k in HISTORY_COLUMNS]
            for r in read_history(role_dir / HISTORY_FILE)]
    return (_card_accuracy(info.get("accuracy"))
            + _table([HISTORY_FORMAT[k][0] for k in HISTORY_COLUMNS], rows)
            + "".join(_image(role_dir / name, Path(name).stem) for name in CURVES))


def _card_accuracy(accuracy: dict | None) -> str:
    """The accuracy the model card states, with how it was measured and on how many photos."""
    if not accuracy:
        return ""
    said = describe_accuracy(accuracy["correct"], accuracy["n"], interval=True)
    if accuracy["how"] == "cross-validated":
        folds = ", ".join(f"{100 * a:.0f}" for a in accuracy["fold_accuracies"])
        return (f"<p>Model card: <b>cross-validated accuracy {said}</b> over "
                f"{accuracy['folds']} folds ({folds} %): every photo validated once, by a model "
                "that never saw it; the split below was too small to trust alone.</p>")
    return f"<p>Model card: <b>validation accuracy {said}</b>.</p>"


def _evaluation(role_dir: Path, info: dict) -> str:
    metrics = read_json(role_dir / EVAL_DIR / METRICS_FILE)
    rows = [[name + (" *" if v["support"] < FEW_PHOTOS else ""), _percent(v["precision"]),
             _percent(v["recall"]), _percent(v["f1"]), v["support"]]
            for name, v in metrics["per_class"].items()]
    views = ("each photo averaged with its mirror" if metrics["mirror"]
             else "one view of each photo")
    head = (f"<p>accuracy <b>{describe_accuracy(metrics['n_correct'], metrics['n_images'])}"
            f"</b>, top-{metrics['top_k']} {_percent(metrics['top_k_accuracy'])}, "
            f"ECE {metrics['ece']:.3f}, {views}</p>")
    few = any(v["support"] < FEW_PHOTOS for v in metrics["per_class"].values())
    note = (f"<p class='muted'>* fewer than {FEW_PHOTOS} validation photos: that class's "
            "precision and recall say little.</p>" if few else "")
    return (head + _table(["class", "precision", "recall", "f1", "support"], rows) + note
            + "".join(_image(role_dir / EVAL_DIR / name, name) for name in EVAL_FIGURES))


def _comparison(run: Path, summary: dict) -> str:
    rows = [[ROLE_TITLES[role], info["model"], info["recipe"]["name"],
             describe_accuracy(info["eval_correct"], info["eval_images"]),
             info["train_seconds"]] for role, info in summary["roles"].items()]
    images = "".join(_image(run / name, name) for name in summary["figures"])
    verdict = (f"<p><b>Which to use:</b> {html.escape(summary['comparison']['verdict'])}.</p>"
               if summary.get("comparison") else "")
    return _section("comparison", _table(["", "model", "recipe", "validation accuracy",
                                          "seconds to train (data, model, epochs)"], rows)
                    + verdict + images)


def _timings(summary: dict) -> str:
    rows = [[name, seconds] for name, seconds in summary["steps"].items()]
    rows.append(["total", summary["total_seconds"]])
    return _section("timings", _table(["step", "seconds"], rows))


def write_report(run: Path) -> Path:
    """Write run/report.html from the files of a `petal run` folder; returns its path."""
    summary = read_json(run / TIMINGS_FILE)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS.items())
    body = [
        f"<h1>petal report</h1><p class='muted'>{html.escape(summary['data_description'])}"
        f" &middot; recipes: {html.escape(summary['recipes'])} &middot; finished "
        f"{html.escape(summary['finished'])}</p><nav>{nav}</nav>",
        _data_section(run),
        _section("lr-finder", _per_role(run, summary, _lr_finder)),
        _section("training", _per_role(run, summary, _training)),
        _section("evaluation", _per_role(run, summary, _evaluation, wide=True)),
        _comparison(run, summary),
        _timings(summary),
        _section("machine", _table(["", ""], [[k, v] for k, v in summary["machine"].items()])),
    ]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>petal report"
            f"</title><style>{STYLE}</style></head><body>{''.join(body)}{ZOOM}</body></html>\n")
    path = run / REPORT_FILE
    atomic_write_text(path, page)
    return path
