"""`petal run`: the original experiment in one command, ending in one report page.

    data check -> split -> for the from-scratch model and the pretrained one:
    LR finder (unless `lr_find` is off) -> training -> evaluation; then predictions and
    side-by-side comparisons on validation photos -> report.html

The LR finder is shown, as the write-up's experiment starts with it; each model trains at
its recipe's rate, and the report shows both the suggestion and the rate used.

The main run folder's layout is petal.run_folder's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from petal.data.check import check_folder
from petal.data.decisions import read_review_for
from petal.data.scan import DatasetIndex
from petal.data.split import Split, make_split
from petal.errors import PetalError
from petal.fsutil import atomic_write_json, read_json
from petal.inference.classifier import load
from petal.inference.explain import overlays_if_any
from petal.inference.model_folder import read_card
from petal.jobs.evaluate import EvalRequest, evaluate, read_predictions
from petal.jobs.run import Run
from petal.models import input_spec
from petal.models.weights import parse_weights
from petal.report.figures import (
    GALLERY_MAX,
    Ranking,
    plot_comparison,
    plot_predictions,
    thumbnail,
)
from petal.report.html import write_report
from petal.run_folder import (
    CONFIG_FILE,
    DATA_CHECK_FILE,
    EVAL_DIR,
    METRICS_FILE,
    OUT_OF_FOLD_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    ROLES,
    SPLIT_FILE,
    TIMINGS_FILE,
    writing,
)
from petal.stats import describe_accuracy, mcnemar_p
from petal.system import machine
from petal.training.fit import TrainRequest
from petal.training.orchestrator import train_model
from petal.training.outputs import OutOfFold
from petal.training.recipes import get_recipe

log = logging.getLogger(__name__)

T = TypeVar("T")
RECIPE_SETS = {"fast": ("fast-resnet9", "fast-transfer"),
               "original": ("original-resnet9", "original-transfer")}
SAMPLES_PER_CLASS = 2  # validation photos per class in the prediction figures ...
CLASSES_SHOWN = 50  # ... each class's first before any class's second, for up to this many
COMPARISONS = 3  # photos shown with both models' top-3


@dataclass
class MainJobRequest:
    """What `petal run` is asked to do."""

    data: Path
    out: Path
    data_description: str = ""
    scratch_model: str = "resnet9"
    transfer_model: str = "efficientnet_lite0"
    weights: str | None = None  # for the transfer model; None: its default
    recipes: str = "fast"
    scratch_overrides: list[str] = field(default_factory=list)
    transfer_overrides: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    progress: bool = True
    lr_find: bool = True  # run the LR range test for each model (shown, not trained with)
    review_file: Path | None = None  # decisions of `petal data review`, applied to the split
    labels: Path | None = None  # a labels file to read instead of class folders
    label_columns: tuple[str, str] | None = None  # its photo and label columns (else detected)


class MainJob:
    """What `petal.run` did: the main run folder, its report page and its summary
    (timings.json: each model's figures, the comparison, the steps' times)."""

    def __init__(self, folder: Path, report: Path, summary: dict) -> None:
        self.folder, self.report, self.summary = folder, report, summary

    def __fspath__(self) -> str:
        return str(self.folder)

    def __repr__(self) -> str:
        return f"MainJob({str(self.folder)!r}, report {str(self.report)!r})"

    def run(self, role: str) -> Run:
        """The run folder of one of the two models: "scratch" or "transfer"."""
        if role not in ROLES:
            raise PetalError(f"{role!r}: the main job's models are {', '.join(ROLES)}")
        return Run(self.folder / role)

    def _repr_html_(self) -> str:
        from petal.display import heading, paragraph, table_html

        rows = [[role, info["model"], info["recipe"]["name"],
                 describe_accuracy(info["eval_correct"], info["eval_images"]),
                 f"{info['train_seconds']:.0f} s"] for role, info in self.summary["roles"].items()]
        return (heading(f"petal run: {self.folder}")
                + table_html(rows, ["model", "network", "recipe", "validation accuracy",
                                    "training"])
                + paragraph(self.summary["comparison"]["verdict"])
                + paragraph(f"Report: {self.report} ({self.summary['total_seconds']:.0f} s in "
                            "all)"))


class Timer:
    """Wall-clock seconds of each step, printed as it goes and kept for the report."""

    def __init__(self, started: float) -> None:
        self.started, self.steps = started, {}

    def __call__(self, name: str, work: Callable[[], T]) -> T:
        log.info(f"\n== {name}")
        start = time.perf_counter()
        result = work()
        self.steps[name] = round(time.perf_counter() - start, 2)
        log.info(f"== {name}: {self.steps[name]:.1f} s")
        return result

    def to_json(self) -> dict:
        return {"steps": self.steps, "total_seconds": round(time.perf_counter() - self.started, 2)}


def _train_role(job: MainJobRequest, role: str, model: str, recipe_name: str,
                overrides: list[str], weights: str | None, scanned: tuple[DatasetIndex, Split],
                timer: Timer) -> dict:
    """One of the two models, trained as petal.train would (a small split cross-validated,
    the model kept on the split's training photos), then evaluated on its validation photos."""
    recipe = get_recipe(recipe_name, overrides)
    request = TrainRequest(data=job.data, recipe=recipe, out=job.out / role, model=model,
                           weights=weights, split_file=job.out / SPLIT_FILE,
                           cache_dir=job.cache_dir, data_description=job.data_description)
    if not job.lr_find:
        log.info(f"LR finder: not run (--no-lr-find); the recipe trains at {recipe.lr:.3g}")
    result = train_model(request, scanned, final="split", progress=job.progress,
                         show_lr_finder=job.lr_find,
                         timed=lambda step, work: timer(f"{role}: {step}", work))
    metrics = timer(f"{role}: evaluate", lambda: evaluate(EvalRequest(
        result.run_dir, cache_dir=job.cache_dir, progress=job.progress))).metrics
    log.info(f"{role}: validation accuracy "
             f"{describe_accuracy(metrics['n_correct'], metrics['n_images'])}")
    return {"model": model, "recipe": dataclasses.asdict(recipe),
            "lr_suggested": result.lr_suggested, "run": role, "val_acc": result.val_acc,
            "accuracy": read_card(result.model_dir).accuracy, "eval_accuracy": metrics["accuracy"],
            "eval_correct": metrics["n_correct"], "eval_images": metrics["n_images"],
            "train_seconds": result.seconds}


def compare_models(out: Path, split: Split) -> dict:
    """Which of the two models to use: each one's photos right that the other got wrong, and
    the exact McNemar test of that difference; on every photo out of fold when both
    cross-validated (the same folds: one split, one seed), else on the validation photos."""
    if all((out / role / OUT_OF_FOLD_FILE).is_file() for role in ROLES):
        photos = len(split.train) + len(split.val)
        right = {role: _right_out_of_fold(out / role / OUT_OF_FOLD_FILE, len(split.classes),
                                          photos) for role in ROLES}
        which = f"{photos} photos, each judged by models that never saw it,"
    else:
        right = {role: read_predictions(out / role / EVAL_DIR / PREDICTIONS_FILE)
                 for role in ROLES}
        which = f"{len(right['scratch'].keys() & right['transfer'].keys())} validation photos"
    photos = right["scratch"].keys() & right["transfer"].keys()
    only = {role: sum(right[role][p] and not right[other][p] for p in photos)
            for role, other in zip(ROLES, ROLES[::-1])}
    p_value = mcnemar_p(only["scratch"], only["transfer"])
    better = max(ROLES, key=lambda role: only[role])
    verdict = (f"use {better}: on {which} it got {only[better]} right that the other got "
               f"wrong, against {min(only.values())} (McNemar p = {p_value:.2g})"
               if p_value < 0.05 else
               f"{which} cannot tell the two apart ({only['scratch']} right only by scratch, "
               f"{only['transfer']} only by transfer; McNemar p = {p_value:.2g}); more photos "
               "would")
    return {"photos": len(photos), "only_right": only, "p_value": p_value,
            "better": better if p_value < 0.05 else None, "verdict": verdict}


def _right_out_of_fold(path: Path, classes: int, photos: int) -> dict[int, bool]:
    """Each photo (its place in the split) -> whether its fold's model got it right."""
    found = OutOfFold.load(path, classes, photos)
    right = found.logits.argmax(axis=1) == found.labels
    return {int(photo): bool(ok) for photo, ok in zip(found.photos, right)}


def _figures(job: MainJobRequest, split_items: list, worst: list[dict]) -> list[str]:
    """Predictions on sample validation photos, and comparisons where the scratch model erred."""
    classifiers = {role: load(job.out / role) for role in ROLES}
    by_class: dict[str, list[Path]] = {}
    for item in split_items:
        by_class.setdefault(item.label, []).append(job.data / item.path)
    samples = [(paths[rank], label) for rank in range(SAMPLES_PER_CLASS)
               for label, paths in by_class.items() if rank < len(paths)]
    photos = [p for p, _ in samples]
    written = []
    for role, classifier in classifiers.items():
        predictions = classifier.predict(photos, top_k=1)
        name = f"predictions_{role}.png"
        plot_predictions([thumbnail(p) for p in photos], [p.label for p in predictions],
                         [p.probability for p in predictions], job.out / name, len(photos),
                         truths=[label for _, label in samples],
                         title=f"{role}: {classifier.card.architecture['name']}",
                         unknown=[p.unknown for p in predictions],
                         limit=max(GALLERY_MAX, min(len(by_class), CLASSES_SHOWN)))
        written.append(name)
    compared = [(Path(m["path"]), m["true"]) for m in worst[:COMPARISONS]] or \
        samples[:COMPARISONS]
    for n, (photo, truth) in enumerate(compared, start=1):
        rankings = []
        for role, classifier in classifiers.items():
            top = classifier.predict(photo, top_k=3)
            title = f"{role}: {classifier.card.architecture['name']}"
            seen = overlays_if_any(classifier, classifier.prepare(photo)[None])
            rankings.append(Ranking(title, top.labels, top.probabilities, top.unknown,
                                    seen[0] if seen else None))
        name = f"compare_{n}.png"
        plot_comparison(thumbnail(photo, side=384), rankings, job.out / name, truth=truth)
        written.append(name)
    return written


def run_main_job(job: MainJobRequest, started: float) -> MainJob:
    """The whole experiment (see module docstring)."""
    check_job(job)
    with writing(job.out):
        return _run_main_job(job, started)


def check_job(job: MainJobRequest) -> None:
    """PetalError, before anything is written, for what would stop the job midway: a recipe
    set, an override, a model or a weights file petal cannot use, or a review file that is
    not there (an --out that holds a run already is refused once it is held)."""
    if job.recipes not in RECIPE_SETS:
        raise PetalError(f"--recipes {job.recipes}: use one of {', '.join(RECIPE_SETS)}")
    for recipe, overrides in zip(RECIPE_SETS[job.recipes],
                                 (job.scratch_overrides, job.transfer_overrides), strict=True):
        get_recipe(recipe, overrides)
    for model in (job.scratch_model, job.transfer_model):
        input_spec(model)  # an unknown model's name is refused here
    parse_weights(job.weights)
    if job.review_file is not None and not job.review_file.is_file():
        raise PetalError(f"review file {job.review_file} does not exist")


def _run_main_job(job: MainJobRequest, started: float) -> MainJob:
    if any((job.out / name).exists() for name in (REPORT_FILE, TIMINGS_FILE, DATA_CHECK_FILE,
                                                   CONFIG_FILE)):
        raise PetalError(f"{job.out} already holds a run: choose another --out")
    scratch_recipe, transfer_recipe = RECIPE_SETS[job.recipes]
    timer = Timer(started)
    job.out.mkdir(parents=True, exist_ok=True)
    log.info(f"Data: {job.data_description or job.data}")
    report = timer("check data", lambda: check_folder(job.data, progress=job.progress,
                                                            labels=job.labels,
                                                            label_columns=job.label_columns))
    atomic_write_json(job.out / DATA_CHECK_FILE, report.to_json())
    if not report.usable:
        raise PetalError(f"the data set cannot be used: {report.problem}")
    log.info(f"{len(report.index.images)} images in {len(report.index.classes)} classes, "
             f"{len(report.index.rejected)} files not used")
    decisions = read_review_for(job.review_file, report.index) if job.review_file else None
    if decisions:
        log.info(f"Applying {decisions.summary()}")
    split = timer("split", lambda: make_split(report.index, decisions=decisions))
    split.save(job.out / SPLIT_FILE)
    scanned = (report.index, split)
    roles = {
        "scratch": _train_role(job, "scratch", job.scratch_model, scratch_recipe,
                               job.scratch_overrides, None, scanned, timer),
        "transfer": _train_role(job, "transfer", job.transfer_model, transfer_recipe,
                                job.transfer_overrides, job.weights, scanned, timer),
    }
    worst = read_json(job.out / "scratch" / EVAL_DIR / METRICS_FILE)["worst_mistakes"]
    comparison = compare_models(job.out, split)
    figures = timer("predictions and comparisons", lambda: _figures(job, split.val, worst))
    summary = {"data": str(job.data), "data_description": job.data_description,
               "recipes": job.recipes, "roles": roles, "comparison": comparison,
               "figures": figures, "machine": machine(),
               "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **timer.to_json()}
    atomic_write_json(job.out / TIMINGS_FILE, summary)
    path = timer("report", lambda: write_report(job.out))
    summary.update(timer.to_json())
    atomic_write_json(job.out / TIMINGS_FILE, summary)
    return MainJob(job.out, path, summary)
