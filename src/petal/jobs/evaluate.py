"""`petal evaluate`: how a saved model does on labelled images, in numbers and pictures.

What is evaluated (an `EvalRequest`), in order of precedence:
  data=DIR               every readable image of DIR (one sub-folder per class); unreadable
                         files are skipped and listed in `skipped`
  split_file=FILE        a part (`part`, default val) of that split, of `data` or the model's data
  (neither)              the model's own validation split: model.json's `data` and `split`;
                         for a model trained on every photo of its split (cross-validated,
                         then a final model), what the cross-validation's models said of the
                         photos each did not train on (out_of_fold.safetensors), marked so

Class folders map to the model's classes by name (case-insensitive, singular or plural:
`Roses/` -> rose, `daisies/` -> daisy) or by an explicit class map; a folder may hold only
some of the classes, and metrics are always over all the model's classes.

Pixels come from the decoded cache plus the central crop: exactly what Classifier.prepare
gives for the same file, through the same network, so the figures are what `petal predict`
delivers (a model trained with a mirrored view averages it itself). With `tta`, a model
without one also averages each image with its mirror: a figure predict does not give.

Written to `out` (default RUN/eval/ for the model's own split, RUN/eval-NAME/ for the data
folder NAME; RUN is the run folder holding model/, or a standalone model folder itself):
  metrics.json           everything below, plus `worst_mistakes`, `class_mapping`, `skipped`
  confusion_matrix.png   counts (left) and rows normalised to recall (right); rows = true class
  worst_mistakes.png     the most confident wrong predictions
  reliability.png        accuracy against confidence, 15 bins, ECE in the title
  predictions.csv        path,true,predicted,confidence: each photo's answer (text cells
                         escaped for spreadsheets), for comparing models photo by photo
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from petal.analysis.metrics import (
    N_BINS,
    compute_metrics,
    open_set_metrics,
    rounded,
    worst_mistakes,
)
from petal.data.class_map import map_folders, parse_class_map
from petal.data.decoded_cache import DecodedCache
from petal.data.scan import scan_folder, scan_labelled_as, scan_unlabelled
from petal.data.split import Split, check_split_matches
from petal.errors import PetalError
from petal.fsutil import atomic_write_json, atomic_write_text
from petal.inference.classifier import Classifier, load
from petal.inference.explain import overlays_if_any
from petal.inference.model_folder import ModelCard
from petal.inference.preprocess import center_crop
from petal.inference.shift import check_shift
from petal.paths import cache_root, refuse_inside
from petal.report.figures import (
    Mistake,
    confusion_matrix_figure,
    plot_novelty,
    plot_worst_mistakes,
    reliability_figure,
    save_figure,
    thumbnail,
)
from petal.run_folder import (
    EVAL_DIR,
    EVAL_FIGURES,
    METRICS_FILE,
    NOVELTY_FIGURE,
    OUT_OF_FOLD_FILE,
    PREDICTIONS_FILE,
    find_model_folder,
    run_of_model,
)
from petal.spreadsheet import csv_writer, escape_cell, unescape_cell
from petal.stats import (
    describe_accuracy,
    softmax,
)
from petal.training.calibration import expected_calibration_error
from petal.training.outputs import OutOfFold

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class EvalRequest:
    """What to evaluate, and how (see the module docstring)."""

    model: str | os.PathLike  # a run folder or a model folder
    data: str | os.PathLike | None = None
    split_file: str | os.PathLike | None = None
    class_map: str | os.PathLike | Mapping[str, str] | None = None
    tta: bool = False  # for a model without a mirrored view: average each image's mirror too
    out: str | os.PathLike | None = None  # None: RUN/eval or RUN/eval-NAME
    part: str = "val"
    top_k: int = 2
    cache_dir: str | os.PathLike | None = None
    progress: bool = True
    include_training: bool = False  # also score photos the model trained on
    unknown: str | os.PathLike | None = None  # photos of none of the classes: open-set figures


@dataclass
class EvalSet:
    """Labelled files to evaluate: (path under `root`, class folder, SHA-256) per image."""

    root: Path
    items: list[tuple[str, str, str]]
    class_mapping: dict[str, str]  # class folder -> model class
    skipped: list[dict]  # unreadable files: path, reason, message
    split: str | None = None  # the split file, when a part of a split is evaluated
    part: str | None = None


class Evaluation:
    """What `petal.evaluate` found: `metrics` (what metrics.json holds), and each photo's
    probabilities and true class, from which the figures are drawn."""

    def __init__(self, metrics: dict, probabilities: np.ndarray, targets: np.ndarray) -> None:
        self.metrics, self.probabilities, self.targets = metrics, probabilities, targets

    def __repr__(self) -> str:
        return f"Evaluation({self.metrics['out']!r}: {self.summary()})"

    @property
    def folder(self) -> Path:
        """Where metrics.json, predictions.csv and the figures were written."""
        return Path(self.metrics["out"])

    @property
    def accuracy(self) -> dict:
        """value, correct, n and the 95 % interval."""
        m = self.metrics
        return {"value": m["accuracy"], "correct": m["n_correct"], "n": m["n_images"],
                "interval": m["accuracy_interval"]}

    @property
    def per_class(self) -> list[dict]:
        """A row a class: class, precision, recall, f1, support (None: 0/0)."""
        return [{"class": name, **row} for name, row in self.metrics["per_class"].items()]

    @property
    def confusion_matrix(self) -> np.ndarray:
        """Counts; rows are the true class, columns the predicted one."""
        return np.array(self.metrics["confusion_matrix"])

    @property
    def calibration(self) -> dict:
        """The ECE with the model's temperature and without it, and the temperature."""
        m = self.metrics
        return {"ece": m["ece"], "ece_uncalibrated": m["ece_uncalibrated"],
                "temperature": m["temperature"], "bins": m["ece_bins"]}

    @property
    def worst_mistakes(self) -> list[dict]:
        """The most confident wrong answers: path, true, predicted, confidence."""
        return self.metrics["worst_mistakes"]

    def plot(self) -> dict[str, Figure]:
        """The confusion matrix and the reliability diagram, by file name."""
        from petal.report.notebook import Figures

        classes = self.metrics["classes"]
        confusion, reliability = EVAL_FIGURES[:2]
        return Figures({confusion: confusion_matrix_figure(self.confusion_matrix, classes),
                        reliability: reliability_figure(*_reliability(self.metrics,
                                                                      self.probabilities,
                                                                      self.targets))})

    def summary(self) -> str:
        return f"accuracy {describe_accuracy(self.metrics['n_correct'], self.metrics['n_images'])}"

    def to_pandas(self) -> Any:
        """The per-class table as a pandas DataFrame (pandas is not one of petal's
        dependencies)."""
        from petal.display import pandas

        return pandas().DataFrame(self.per_class).set_index("class")

    def _repr_html_(self) -> str:
        from petal.display import heading, paragraph, table_html
        from petal.report.notebook import figures_html

        columns = ["class", "precision", "recall", "f1", "support"]
        return (heading(f"Evaluation of {self.metrics['model']} on {self.metrics['data']}")
                + paragraph(self.summary() + f"; ECE {self.metrics['ece']:.3f}")
                + (paragraph(self.metrics["shift"]["message"]) if "shift" in self.metrics
                   else "")
                + table_html([[row[c] for c in columns] for row in self.per_class], columns)
                + figures_html(list(self.plot().values())))


# --- which folder is which class ------------------------------------------------------------


# --- what to evaluate ------------------------------------------------------------------------

def _existing(path: Path | None, what: str) -> Path:
    """The model's own split file or data folder, which model.json names and must still exist."""
    if path is None or not path.exists():
        where = f" {path} is not there any more" if path else " is not named in model.json"
        raise PetalError(f"the model's {what}{where}: evaluate with --data DIR "
                         "(and --split FILE for a part of a split)")
    return path


def split_set(split_file: Path, data: Path, part: str, classes: Sequence[str],
              class_map: Mapping[str, str], progress: bool) -> EvalSet:
    """One part of a split, checked against a fresh scan of the data it was made from."""
    split = Split.load(split_file)
    index = scan_labelled_as(data, split.labels, progress)
    check_split_matches(split, index)
    mapping = map_folders(split.classes, classes, class_map)
    items = [(i.path, i.label, i.sha256) for i in split.part(part)]
    return EvalSet(index.root, items, mapping, [], str(split_file), part)


def folder_set(data: Path, classes: Sequence[str], class_map: Mapping[str, str],
               progress: bool) -> EvalSet:
    """Every readable image of an image folder; unreadable files are listed as skipped."""
    index = scan_folder(data, progress=progress)
    mapping = map_folders(index.classes, classes, class_map)
    items = [(r.path, r.label, r.sha256) for r in index.images]
    return EvalSet(index.root, items, mapping, [asdict(r) for r in index.rejected])


def _default_out(run: Path, data: Path | None, split_file: Path | None,
                 own_split: Path | None, part: str, exported: Path | None = None) -> Path:
    parts = [EVAL_DIR]
    if exported is not None:  # eval-model.int8, beside the weights' own eval
        parts.append(exported.stem)
    if data is not None:
        parts.append(data.resolve().name)
    if split_file is not None and split_file.resolve() != own_split:
        parts.append(split_file.stem)
    if part != "val" and (split_file is not None or data is None):
        parts.append(part)
    return run / "-".join(parts)


# --- probabilities and metrics ---------------------------------------------------------------

def decoded_squares(chosen: EvalSet, size: int, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> np.ndarray:
    """The images of `chosen` from the decoded cache at `size` px: (N, size, size, 3) uint8."""
    return DecodedCache(cache_root(cache_dir), size).ensure(
        [(chosen.root / path, sha) for path, _, sha in chosen.items], progress=progress)


def central_crops(squares: np.ndarray, size: int) -> np.ndarray:
    """The central size x size crop of each decoded-cache row: what Classifier.prepare returns."""
    return np.stack([center_crop(square, size) for square in squares])


def assess_squares(classifier: Classifier, squares: np.ndarray, tta: bool = False,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities and novelty (None without a score) of decoded-cache rows
    (N, S, S, 3), batch by batch.

    With `tta`, the probabilities are the mean of each crop's and of its mirror's.
    """
    step = classifier.batch_size
    probabilities, novelty = [], []
    with tqdm(total=len(squares), desc="Evaluating", unit="img", leave=False,
              disable=not progress) as bar:
        for start in range(0, len(squares), step):
            crops = central_crops(squares[start:start + step], classifier.spec.size)
            answer = classifier.answer(crops)
            batch = answer.probabilities
            if tta:
                batch = (batch + classifier.answer(crops[:, :, ::-1]).probabilities) / 2
            probabilities.append(batch)
            novelty.append(answer.novelty)
            bar.update(len(crops))
    if classifier.novelty is None or not novelty:
        return np.concatenate(probabilities), None
    return np.concatenate(probabilities), np.concatenate(novelty)


def probabilities(classifier: Classifier, squares: np.ndarray, tta: bool = False,
                  progress: bool = True) -> np.ndarray:
    """Class probabilities of decoded-cache rows (N, S, S, 3), as `assess_squares`."""
    return assess_squares(classifier, squares, tta, progress)[0]


def write_predictions(path: Path, paths: Sequence[str], truths: Sequence[str],
                      predicted: Sequence[str], confidences: np.ndarray) -> None:
    """predictions.csv: one row per photo (module docstring)."""
    text = io.StringIO()
    writer = csv_writer(text)
    writer.writerow(["path", "true", "predicted", "confidence"])
    writer.writerows([escape_cell(p), escape_cell(t), escape_cell(q), f"{c:.6f}"]
                     for p, t, q, c in zip(paths, truths, predicted, confidences))
    atomic_write_text(path, text.getvalue())


def read_predictions(path: Path) -> dict[str, bool]:
    """predictions.csv as photo -> answered right."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {unescape_cell(row["path"]): row["true"] == row["predicted"]
                for row in csv.DictReader(handle)}


def write_figures(metrics: dict, probs: np.ndarray, targets: np.ndarray, out: Path,
                  classifier: Classifier | None) -> None:
    """confusion_matrix.png, reliability.png and worst_mistakes.png into `out`; without a
    `classifier` (another model answered) the mistakes are shown without a heat map."""
    classes = metrics["classes"]
    confusion_png, reliability_png, mistakes_png = (out / name for name in EVAL_FIGURES)
    save_figure(confusion_matrix_figure(np.array(metrics["confusion_matrix"]), classes),
                confusion_png)
    save_figure(reliability_figure(*_reliability(metrics, probs, targets)), reliability_png)
    images, explained = mistake_images(classifier, [m["path"] for m in metrics["worst_mistakes"]])
    mistakes = [Mistake(image, m["true"], m["predicted"], m["confidence"])
                for image, m in zip(images, metrics["worst_mistakes"])]
    plot_worst_mistakes(mistakes, mistakes_png, metrics["n_images"], metrics["n_mistakes"],
                        explained)


def _reliability(metrics: dict, probs: np.ndarray, targets: np.ndarray) -> tuple:
    """reliability_figure's arguments: the confidences with the model's temperature, and
    without it (when it has one) for comparison."""
    uncalibrated = (softmax(np.log(np.clip(probs, 1e-12, None)) * metrics["temperature"])
                    if metrics["temperature"] != 1.0 else None)
    return (probs.max(axis=1), probs.argmax(axis=1) == targets, metrics["ece"], N_BINS,
            None if uncalibrated is None else (uncalibrated.max(axis=1),
                                               metrics["ece_uncalibrated"]))


def mistake_images(classifier: Classifier | None, paths: Sequence[str]) -> tuple[list, bool]:
    """The mistakes as the model saw them with the heat map of the class it wrongly
    predicted over them (True), or as thumbnails for a model without maps or none (False)."""
    if not paths:
        return [], False
    explained = (overlays_if_any(classifier, np.stack([classifier.prepare(p) for p in paths]))
                 if classifier is not None else None)
    if explained is None:
        return [thumbnail(path) for path in paths], False
    return explained, True


# --- the whole evaluation ------------------------------------------------------------------

def training_hashes(own_split: Path | None) -> set[str] | None:
    """The SHA-256 of every photo the model trained on, from its split; None if unknown."""
    if own_split is None or not own_split.is_file():
        return None
    return {item.sha256 for item in Split.load(own_split).train}


def leave_out_training(chosen: EvalSet, trained_on: set[str] | None, include: bool) -> int:
    """Drop the model's own training photos from `chosen` unless `include`; returns how many
    of its images the model trained on. PetalError when nothing else is left."""
    seen = sum(sha in trained_on for _, _, sha in chosen.items) if trained_on else 0
    if seen and not include:
        if seen == len(chosen.items):
            raise PetalError(f"all {seen} images are photos this model was trained on, and a "
                             "score on them says nothing about new photos: evaluate other "
                             "photos, or pass --include-training to score them anyway")
        chosen.items = [item for item in chosen.items if item[2] not in trained_on]
    return seen


def _folder_of_export(file: Path) -> Path | None:
    """The model folder an exported file sits in (its split says which photos it trained
    on), or None for a file on its own (then --data or --split names the photos)."""
    if not file.is_file():
        raise PetalError(f"ONNX file {file} does not exist")
    try:
        return find_model_folder(file.parent)
    except PetalError:
        return None


def evaluate(request: EvalRequest) -> Evaluation:
    """Evaluate a run or model folder, or an exported .onnx file in a model folder (see the
    module docstring); returns what metrics.json holds, with the figures' data.

    Photos the model trained on (by content, from its split) are left out unless
    `include_training`; metrics.json says how many there were.
    Raises PetalError for a missing or foreign model, data that does not match the split,
    class folders that match no class, or a class map naming unknown classes.
    """
    if request.out is not None and request.data is not None:
        refuse_inside(request.out, request.data)  # before the model is loaded
    exported = Path(request.model).suffix.lower() == ".onnx"  # e.g. model.int8.onnx
    model_folder = (_folder_of_export(Path(request.model)) if exported
                    else find_model_folder(request.model))
    classifier = load(request.model if exported else model_folder)
    card, classes = classifier.card, classifier.classes
    data = Path(request.data) if request.data is not None else None
    split_file = Path(request.split_file) if request.split_file is not None else None
    own_split = ((model_folder / card.split).resolve()
                 if card.split and model_folder is not None else None)
    trained_on_all = (_trained_on_all(own_split) if data is None and split_file is None
                      and request.part == "val" else None)
    if trained_on_all is not None:
        out = Path(request.out) if request.out is not None else (
            run_of_model(model_folder) / EVAL_DIR)
        return _out_of_fold(request, classifier, model_folder, (own_split, trained_on_all), out)
    chosen = _chosen_set(request, data, split_file, own_split, card, classes)
    trained_on = training_hashes(own_split)
    seen = leave_out_training(chosen, trained_on, request.include_training)
    out = (Path(request.out) if request.out is not None
           else _default_out(run_of_model(model_folder) if model_folder is not None
                             else Path(request.model).parent, data, split_file, own_split,
                             request.part, Path(request.model) if exported else None))
    refuse_inside(out, chosen.root)  # the model's own data, by default
    squares = decoded_squares(chosen, classifier.spec.resize_size, request.cache_dir,
                              request.progress)
    tta = request.tta and not classifier.spec.mirror  # a model that mirrors itself gains nothing
    probs, novelty = assess_squares(classifier, squares, tta, request.progress)
    targets = np.array([classes.index(chosen.class_mapping[folder])
                        for _, folder, _ in chosen.items])
    paths = [str(chosen.root.resolve() / path) for path, _, _ in chosen.items]
    metrics = {
        "model": str(Path(request.model if exported else model_folder).resolve()),
        "architecture": card.architecture.get("name"),
        "classes": classes,
        "data": str(chosen.root.resolve()),
        "split": chosen.split,
        "part": chosen.part,
        "tta": tta,
        "mirror": classifier.spec.mirror,
        "n_images": len(paths),
        **compute_metrics(probs, targets, classes, request.top_k),
        "training_images": {"found": seen, "included": request.include_training and seen > 0,
                            "checked": trained_on is not None},
        "class_mapping": chosen.class_mapping,
        "skipped": chosen.skipped,
        "n_mistakes": int((probs.argmax(axis=1) != targets).sum()),
        "worst_mistakes": worst_mistakes(probs, targets, paths, classes),
        "temperature": card.temperature,
        "card_accuracy": card.accuracy,
        "ece_uncalibrated": rounded(expected_calibration_error(
            np.log(np.clip(probs, 1e-12, None)) * card.temperature, targets)),
        "out": str(out.resolve()),
        "files": [METRICS_FILE, *EVAL_FIGURES, PREDICTIONS_FILE],
    }
    if novelty is not None and not chosen.split:  # other photos than the model's own split
        if classifier.shift_unavailable:
            metrics["shift_unavailable"] = classifier.shift_unavailable
        else:
            shift = check_shift(novelty, classifier.novelty.val_scores,
                                classifier.novelty.threshold)
            metrics["shift"] = {**shift.to_json(), "message": shift.message()}
    out.mkdir(parents=True, exist_ok=True)
    write_figures(metrics, probs, targets, out, classifier)
    write_predictions(out / PREDICTIONS_FILE, paths, [classes[t] for t in targets],
                      [classes[p] for p in probs.argmax(axis=1)], probs.max(axis=1))
    if request.unknown is not None:
        metrics["open_set"] = _open_set(request, classifier, novelty,
                                        probs.argmax(axis=1) == targets, out)
        metrics["files"].append(NOVELTY_FIGURE)
    atomic_write_json(out / METRICS_FILE, metrics)
    return Evaluation(metrics, probs, targets)


def _trained_on_all(own_split: Path | None) -> Split | None:
    """The model's split when it trained on every photo of it (no validation part)."""
    if own_split is None or not own_split.is_file():
        return None
    split = Split.load(own_split)
    return None if split.val else split


def _out_of_fold(request: EvalRequest, classifier: Classifier, model_folder: Path,
                 own: tuple[Path, Split], out: Path) -> Evaluation:
    """A model trained on every photo of its split, evaluated on what its cross-validation's
    models said of the photos each did not train on, divided by the final model's
    temperature as its own answers are (fitted on these same answers: the calibrated ECE
    is optimistic). PetalError when the run holds no such predictions."""
    card, classes, run = classifier.card, classifier.classes, run_of_model(model_folder)
    if not (run / OUT_OF_FOLD_FILE).is_file() or card.accuracy.get("how") != "cross-validated":
        raise PetalError(f"the model trained on every photo of its split and {run} holds no "
                         "out-of-fold predictions to evaluate it on: evaluate it on other "
                         "photos with --data DIR")
    if request.unknown is not None and card.novelty_from_other_models:
        raise PetalError("--unknown compares the novelty of your other photos with the "
                         "known photos', and this model's known photos were scored by its "
                         "cross-validation's networks, which see photos otherwise: evaluate "
                         "it with --data DIR of labelled photos beside --unknown")
    own_split, split = own  # the split file, and what it holds
    if list(split.classes) != list(classes):
        raise PetalError(f"{own_split} names other classes than the model: train again")
    photos = sorted(item.path for item in split.train + split.val)  # as cross_validate placed them
    found = OutOfFold.load(run / OUT_OF_FOLD_FILE, len(classes), len(photos))
    stored = classifier.novelty.val_scores if classifier.novelty is not None else None
    if stored is not None and (stored.shape != found.novelty.shape
                               or not np.allclose(stored, found.novelty, rtol=1e-5)):
        raise PetalError(f"{run / OUT_OF_FOLD_FILE} is not this model's: its novelty scores "
                         "differ from the ones the model was fitted on (copied from another "
                         "run?); train again")
    probs, targets = softmax(found.logits / card.temperature), found.labels
    root = Path(card.data) if card.data else own_split.parent
    paths = [str(root.resolve() / photos[i]) for i in found.photos]
    metrics = {
        "model": str(model_folder.resolve()), "architecture": card.architecture.get("name"),
        "classes": classes, "data": str(root.resolve()), "split": str(own_split),
        "part": None, "out_of_fold": {"folds": card.accuracy.get("folds")},
        "tta": False, "mirror": classifier.spec.mirror, "n_images": len(paths),
        **compute_metrics(probs, targets, classes, request.top_k),
        "training_images": {"found": 0, "included": False, "checked": True},
        "class_mapping": {name: name for name in classes}, "skipped": [],
        "n_mistakes": int((probs.argmax(axis=1) != targets).sum()),
        "worst_mistakes": worst_mistakes(probs, targets, paths, classes),
        "temperature": card.temperature, "card_accuracy": card.accuracy,
        "ece_uncalibrated": rounded(expected_calibration_error(found.logits, targets)),
        "out": str(out.resolve()), "files": [METRICS_FILE, *EVAL_FIGURES, PREDICTIONS_FILE],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_figures(metrics, probs, targets, out, None)
    write_predictions(out / PREDICTIONS_FILE, paths, [classes[t] for t in targets],
                      [classes[p] for p in probs.argmax(axis=1)], probs.max(axis=1))
    if request.unknown is not None:
        metrics["open_set"] = _open_set(request, classifier, found.novelty,
                                        probs.argmax(axis=1) == targets, out)
        metrics["files"].append(NOVELTY_FIGURE)
    atomic_write_json(out / METRICS_FILE, metrics)
    return Evaluation(metrics, probs, targets)


def _open_set(request: EvalRequest, classifier: Classifier, known: np.ndarray | None,
              right: np.ndarray, out: Path) -> dict:
    """Novelty of the known images against that of `request.unknown`'s; the histogram."""
    if known is None:
        raise PetalError("this model has no novelty score (trained before petal 0.2, or "
                         "rejection turned off): train it again to evaluate unknown photos")
    index = scan_unlabelled(request.unknown, progress=request.progress)
    if not index.images:
        raise PetalError(f"no readable images in {request.unknown}")
    chosen = EvalSet(index.root, [(r.path, "", r.sha256) for r in index.images], {},
                     [asdict(r) for r in index.rejected])
    squares = decoded_squares(chosen, classifier.spec.resize_size, request.cache_dir,
                              request.progress)
    _, unknown = assess_squares(classifier, squares, progress=request.progress)
    threshold = classifier.novelty.threshold
    metrics = open_set_metrics(known, unknown, threshold, right)
    plot_novelty(known, unknown, threshold, out / NOVELTY_FIGURE)
    return {"unknown_data": str(index.root.resolve()), "n_unknown": len(unknown),
            "skipped": chosen.skipped, "method": classifier.novelty.method,
            "keep": classifier.novelty.keep, "threshold": rounded(threshold), **metrics}


def _chosen_set(request: EvalRequest, data: Path | None, split_file: Path | None,
                own_split: Path | None, card: ModelCard, classes: list[str]) -> EvalSet:
    """The labelled images the request names (module docstring); PetalError if none."""
    mapping = parse_class_map(request.class_map)
    if data is not None and split_file is None:
        chosen = folder_set(data, classes, mapping, request.progress)
    else:
        chosen = split_set(split_file or _existing(own_split, "split file"),
                           data or _existing(Path(card.data) if card.data else None, "data folder"),
                           request.part, classes, mapping, request.progress)
    if not chosen.items:
        accuracy = card.accuracy
        if chosen.split and accuracy and accuracy["how"] == "cross-validated":
            raise PetalError(f"the model trained on every photo of its split, so none is left to "
                             f"evaluate it on: its accuracy is cross-validated, "
                             f"{describe_accuracy(accuracy['correct'], accuracy['n'], True)}. "
                             "Evaluate it on other photos with --data DIR")
        raise PetalError(f"no images to evaluate in {chosen.root}"
                         + (f" (part {chosen.part} of {chosen.split})" if chosen.split else ""))
    return chosen


