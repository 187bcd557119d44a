"""One training: data -> split -> decoded cache -> Lightning fit -> a model folder in the run
folder, with its unknown threshold and temperature (finish); and the one place a learning
rate is chosen (choose_lr). petal.training.orchestrator.train_model drives it.

The run folder's layout is petal.run_folder's. Everything in it is written by global rank 0
only; files are replaced atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import statistics
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset

from petal.data.decisions import read_review_for
from petal.data.decoded_cache import DecodedCache, PhotoSquares
from petal.data.scan import DatasetIndex, require_usable, scan_folder, scan_labelled_as
from petal.data.split import Split, check_split_matches, make_split
from petal.errors import PetalError, PetalWarning
from petal.fsutil import atomic_write_json, read_json
from petal.inference import novelty
from petal.inference.model_folder import ModelCard, save_model_folder
from petal.models import architecture_config, build_model, default_weights, multi_trunk
from petal.models.spec import InputSpec
from petal.paths import cache_root
from petal.report.curves import plot_history
from petal.report.figures import save_figure
from petal.run_folder import (
    BEST_CHECKPOINT,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    CROSS_VALIDATION_FILE,
    HISTORY_FILE,
    LAST_CHECKPOINT,
    LR_FIND_PLOT,
    MODEL_DIR,
    OUT_OF_FOLD_FILE,
    SPLIT_FILE,
    is_run_folder,
    last_checkpoint,
    read_history,
    writing,
)
from petal.stats import INTERVAL_BELOW, describe_accuracy, wilson_interval
from petal.training.batches import CachedImages, eval_loader, train_loader
from petal.training.calibration import calibrate
from petal.training.checkpoints import read_checkpoint
from petal.training.cut import cut_trunks
from petal.training.feature_cache import CachedFeatures, trunk_features
from petal.training.history import HistoryWriter
from petal.training.lr_range import SUGGESTION_RULE, LRFinding
from petal.training.module import ClassifierModule
from petal.training.none_photos import use_none_photos
from petal.training.outputs import OutOfFold, collect_outputs, read_cross_validation
from petal.training.precision import AUTO, describe_training, uses_cuda
from petal.training.recipes import MAX_LR, Recipe, recipe_from_json
from petal.training.trainer import interruptible, make_trainer, precision_of
from petal.version import __version__

log = logging.getLogger(__name__)

# Held-out photos below which one split cannot set an accuracy, a threshold or a
# temperature: at 90 % accuracy the 95 % interval of 100 photos is already 83-95 %, and a
# threshold that keeps 95 % of them rests on the 5 photos above it.
SMALL_HELD_OUT = 100
MIN_BATCHES = 4  # batches an epoch, at the least (fitted_batch_size)
LR_FINDER_STEPS = 100  # learning rates tried, log-spaced from 1e-6 to 1 ...
LR_FINDER_MIN_STEPS = 25  # ... or fewer on a tiny data set: three passes, at least this


@dataclass
class TrainerOptions:
    """Passed through to the Lightning Trainer."""

    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = AUTO  # petal.training.precision: bf16 mixed where the hardware has it


@dataclass
class TrainRequest:
    data: Path
    recipe: Recipe
    out: Path
    model: str | None = None  # None: the recipe's model
    weights: str | None = None  # None: the model family's default ("imagenet" where offline)
    split_file: Path | None = None
    review_file: Path | None = None  # decisions of `petal data review` to apply to the split
    lr: float | str | None = None  # a number, "auto" (LR finder) or None (the recipe's)
    trainer: TrainerOptions = field(default_factory=TrainerOptions)
    cache_dir: str | None = None
    data_description: str = ""
    # False: a final model on every photo of the split, with no validation; its accuracy,
    # threshold and temperature come from the run's cross-validation (out_of_fold.safetensors)
    validate: bool = True
    labels: Path | None = None  # a labels file to read instead of class folders
    label_columns: tuple[str, str] | None = None  # its photo and label columns (else detected)

    def __post_init__(self) -> None:
        if self.lr is None or self.lr == "auto":
            return
        if (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                or not 0 < self.lr <= MAX_LR):
            raise PetalError(f"lr {self.lr!r}: give a number above 0 up to {MAX_LR:g}, 'auto' "
                             "(the LR finder's suggestion) or None (the recipe's)")
        self.lr = float(self.lr)

    @property
    def model_name(self) -> str:
        return self.model or self.recipe.model

    @property
    def weights_or_default(self) -> str | None:
        return self.weights if self.weights is not None else default_weights(self.model_name)


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path
    val_acc: float
    best_val_acc: float
    best_epoch: int
    seconds: float
    lr: float = 0.0  # what it trained at
    lr_suggested: float | None = None  # the LR finder's suggestion, when it ran


@dataclass
class Prepared:
    """Everything a fit needs, decided before any long work starts."""

    recipe: Recipe  # the request's, with the batch size fitted to the training set
    index: DatasetIndex
    split: Split
    model: torch.nn.Module  # the whole network, saved at the end
    spec: InputSpec  # what training crops
    architecture: dict
    network: torch.nn.Module  # what trains: the model, or its top in cached mode
    train_set: Dataset
    val_set: Dataset
    eval_spec: InputSpec  # what validation and the saved model see (the recipe's eval_crop)
    reference_set: Dataset  # the training images as validation sees them (for novelty)

    def module(self, recipe: Recipe | None = None) -> ClassifierModule:
        images_in = self.recipe.mode == "full"  # else stored trunk features
        return ClassifierModule(self.network, recipe or self.recipe, len(self.split.classes),
                                self.spec if images_in else None)


def load_split(request: TrainRequest, index: DatasetIndex) -> Split:
    """The request's split file, or a new split; with the review file's decisions applied."""
    decisions = read_review_for(request.review_file, index) if request.review_file else None
    if decisions:
        log.info(f"Applying {decisions.summary()}")
    if request.split_file is None:
        return make_split(index, decisions=decisions)
    split = Split.load(request.split_file)
    check_split_matches(split, index)
    return split.with_decisions(decisions) if decisions else split


def scan_and_split(request: TrainRequest, progress: bool = True) -> tuple[DatasetIndex, Split]:
    """The checked data folder and the split to train on; PetalError on bad input. A split
    file made from a labels file reads the data as it was read then."""
    if request.labels is not None:
        index = scan_folder(request.data, progress=progress, labels=request.labels,
                            label_columns=request.label_columns)
    elif request.split_file is not None:
        index = scan_labelled_as(request.data, Split.load(request.split_file).labels, progress)
    else:
        index = scan_folder(request.data, progress=progress)
    require_usable(index)
    return index, load_split(request, index)


def fitted_batch_size(batch_size: int, n_train: int) -> int:
    """`batch_size`, or for fewer training images than MIN_BATCHES of it the largest power of
    two that makes MIN_BATCHES batches an epoch (at least 4 images, or 2 for fewer than 8):
    with 100 photos, batches of 64 and the last batch dropped (as BatchNorm needs), an epoch
    was one step that left a third of the photos out."""
    if n_train >= MIN_BATCHES * batch_size:
        return batch_size
    size = 4 if n_train >= 8 else 2
    while size * 2 <= min(batch_size, n_train // MIN_BATCHES):
        size *= 2
    return size


def _fit_batch_size(recipe: Recipe, n_train: int, say: bool = True) -> Recipe:
    batch_size = fitted_batch_size(recipe.batch_size, n_train)
    if batch_size == recipe.batch_size:
        return recipe
    if say:
        log.info(f"note: {n_train} training images, fewer than {MIN_BATCHES} batches of the "
                 f"recipe's {recipe.batch_size}: training with batch size {batch_size}")
    return dataclasses.replace(recipe, batch_size=batch_size)


def prepare(request: TrainRequest, progress: bool = True,
            scanned: tuple[DatasetIndex, Split] | None = None, notes: bool = True) -> Prepared:
    """Check data, split, build the model and decode the images; PetalError on bad input.

    `scanned` (from `scan_and_split`) saves scanning the data folder again; `notes`: say
    when the batch size is fitted to a small training set (a fold's would repeat it).
    """
    index, split = scanned or scan_and_split(request, progress)
    recipe = request.recipe
    options = {"width": recipe.width} if recipe.width is not None else {}
    architecture = architecture_config(request.model_name, len(split.classes),
                                       recipe.input_size, **options)
    if recipe.mode == "cached" and recipe.tta_flip and multi_trunk.SEPARATOR in request.model_name:
        raise PetalError("tta_flip with several trunks needs --set mode=full: cached training "
                         "stores no mirrored views of several trunks")
    L.seed_everything(recipe.seed, verbose=False)
    model, spec = build_model(request.model_name, len(split.classes),
                              weights=request.weights_or_default, input_size=recipe.input_size,
                              **options)
    recipe = _fit_batch_size(recipe, len(split.train), notes)
    if not split.val and request.validate:
        raise PetalError("the split has no validation images: use a larger --val-fraction")
    items = split.train + split.val
    files = [(index.root / i.path, i.sha256) for i in items]
    # a cached recipe reads each photo once, for its features: no decoded square is stored
    pixels = (PhotoSquares(files, spec.resize_size) if recipe.mode == "cached" else
              DecodedCache(cache_root(request.cache_dir), spec.resize_size).ensure(
                  files, progress=progress))
    label_of = {name: i for i, name in enumerate(split.classes)}
    labels = np.array([label_of[i.label] for i in items])
    # what validation and the saved model see: the recipe's crop, with its mirror if any
    eval_spec = dataclasses.replace(spec.whole_square() if recipe.eval_crop == "full" else spec,
                                    mirror=recipe.tta_flip)
    photos = _Photos(pixels, labels, [i.sha256 for i in items], len(split.train))
    if recipe.mode == "full":
        network, sets = model, _image_sets(recipe, spec, eval_spec, photos)
    else:
        network, *sets = _feature_sets(dataclasses.replace(request, recipe=recipe), model, spec,
                                       architecture, photos, progress, notes)
    train_set, val_set, reference_set = sets
    return Prepared(recipe, index, split, model, spec, architecture, network, train_set,
                    val_set, eval_spec, reference_set)


@dataclass(frozen=True)
class _Photos:
    """The split's photos decoded, its training photos first, then its validation ones."""

    pixels: np.ndarray | PhotoSquares  # decoded squares (decoded when read: cached mode)
    labels: np.ndarray
    keys: list[str]  # content hashes: the cache's keys
    n_train: int


def _image_sets(recipe: Recipe, spec: InputSpec, eval_spec: InputSpec, photos: _Photos
                ) -> tuple[Dataset, Dataset, Dataset]:
    """Full mode: random crops of the training photos to train on, the validation photos as
    validation sees them, and the training photos as validation would see them."""
    pixels, labels, n = photos.pixels, photos.labels, photos.n_train
    return (CachedImages(pixels[:n], labels[:n], spec.size, flip=recipe.flip),
            CachedImages(pixels[n:], labels[n:], eval_spec.size, flip=False),
            CachedImages(pixels[:n], labels[:n], eval_spec.size, flip=False))


def _feature_sets(request: TrainRequest, model: torch.nn.Module, spec: InputSpec,
                  architecture: dict, photos: _Photos, progress: bool, notes: bool
                  ) -> tuple[torch.nn.Module, Dataset, Dataset, Dataset]:
    """Cached mode: the top that trains, and the frozen trunks' stored outputs to train and
    validate it on (the mirrored photos' too, for validation, with tta_flip), and the
    training images' outputs as validation sees them."""
    recipe, pixels, labels, keys = request.recipe, photos.pixels, photos.labels, photos.keys
    n = photos.n_train
    trunks, top = cut_trunks(model, recipe.train_from)
    several = len(trunks) > 1
    centre, mirrored = [], None
    for stored in trunks:
        if stored.cut != recipe.train_from and notes:
            log.info(f"note: {stored.name or request.model_name} has no step "
                     f"{recipe.train_from!r}: it trains from {stored.cut!r}")
        features = trunk_features(cache_root(request.cache_dir), stored, architecture, spec,
                                  several, "cuda:0" if uses_cuda(request.trainer.accelerator)
                                  else "cpu")
        centre.append(features.view(pixels, keys, progress=progress))
        if recipe.tta_flip:
            mirrored = features.view(pixels[n:], keys[n:], mirrored=True, progress=progress)
    if several:
        train, val = tuple(c[:n] for c in centre), tuple(c[n:] for c in centre)
    else:
        train, val = centre[0][:n], centre[0][n:]
    return (top, CachedFeatures(train, labels[:n], flip=recipe.flip),
            CachedFeatures(val, labels[n:], mirrored=mirrored), CachedFeatures(train, labels[:n]))


def write_run_start(request: TrainRequest, prepared: Prepared,
                    lr_found: float | None = None) -> None:
    """The run folder's start: its split and config.json (what was asked for; `lr_found`, the
    LR finder's suggestion an "auto" learning rate became)."""
    request = dataclasses.replace(request, recipe=prepared.recipe)  # the fitted batch size
    run = request.out
    run.mkdir(parents=True, exist_ok=True)
    prepared.split.save(run / SPLIT_FILE)
    atomic_write_json(run / CONFIG_FILE, {
        "petal_version": __version__,
        "data": str(Path(request.data).resolve()),
        "data_description": request.data_description,
        "model": request.model_name,
        "weights": request.weights_or_default,
        "architecture": prepared.architecture,
        "input": prepared.spec.to_json(),
        "recipe": dataclasses.asdict(request.recipe),
        "lr": request.lr,
        "trainer": dataclasses.asdict(request.trainer),
        "cache_dir": request.cache_dir,
        "split": SPLIT_FILE,
        "review": str(request.review_file) if request.review_file else None,
        "validate": request.validate,
        **({"lr_found": lr_found} if lr_found is not None else {}),
    })


def find_lr(request: TrainRequest, prepared: Prepared, plot_path: Path | None,
            progress: bool = True, rule: str = SUGGESTION_RULE) -> LRFinding:
    """The LR range test on the training data; saves the plot (unless `plot_path` is None).
    Lightning's tuner runs it (and restores the weights afterwards); the curve and the
    suggestion come from the raw losses (petal.training.lr_range says why)."""
    started = time.perf_counter()
    trainer = make_trainer(request, "range test", progress=progress)
    loader = train_loader(prepared.train_set, prepared.recipe.batch_size, prepared.recipe.seed)
    steps = min(LR_FINDER_STEPS, max(LR_FINDER_MIN_STEPS, 3 * len(loader)))
    module = prepared.module()
    module.step_losses = []
    with warnings.catch_warnings(), _range_test_bar(progress), interruptible(trainer):
        warnings.filterwarnings("ignore", message=".*max_epochs.*|.*val_dataloader.*")
        finder = Tuner(trainer).lr_find(module, train_dataloaders=loader, min_lr=1e-6,
                                        max_lr=1.0, num_training=steps, update_attr=False)
    test = LRFinding.from_steps(finder.results["lr"], module.step_losses,
                                time.perf_counter() - started, rule, prepared.recipe.lr)
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        save_figure(test.figure(), plot_path)
    if test.suggestion is None:
        raise PetalError("the LR finder found no falling stretch of the loss: pass --lr "
                         "NUMBER instead")
    return test


@contextlib.contextmanager
def _range_test_bar(shown: bool) -> Iterator[None]:
    """Lightning's range test draws a progress bar of its own whatever the Trainer says (its
    tqdm, a widget in Jupyter, is made with no way to turn it off): off unless `shown`."""
    from lightning.pytorch.tuner import lr_finder

    original = lr_finder.tqdm
    if not shown:
        lr_finder.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        lr_finder.tqdm = original


def choose_lr(request: TrainRequest, prepared: Prepared | None, progress: bool = True, *,
              resuming: bool = False, show_finder: bool = False) -> ChosenLR:
    """The one place a learning rate is chosen: the request's number, else the recipe's;
    with "auto", the LR finder's suggestion on the prepared training photos (its plot in the
    run folder; found once: config.json keeps it for --resume). `show_finder` runs the range
    test for its plot and suggestion alone (petal run shows them beside the recipe's rate)."""
    run = request.out
    if request.lr == "auto" and resuming:
        return ChosenLR(float(read_json(run / CONFIG_FILE)["lr_found"]))
    given = request.lr if isinstance(request.lr, float) else request.recipe.lr
    if request.lr != "auto" and not show_finder:
        return ChosenLR(given)
    rank_zero = rank_zero_only.rank == 0
    # every rank runs the same seeded test (no process group exists yet); one writes
    plot = run / LR_FIND_PLOT if rank_zero else None
    if request.lr == "auto":
        suggestion = find_lr(request, prepared, plot, progress).suggestion
        log.info(f"LR finder suggests {suggestion:.3g} (plot: {run / LR_FIND_PLOT})")
        return ChosenLR(suggestion, suggestion)
    try:
        suggestion = find_lr(request, prepared, plot, progress).suggestion
    except PetalError as exc:  # the plot is informative; the given rate is what trains
        log.info(f"LR finder: {exc}")
        return ChosenLR(given)
    log.info(f"LR finder suggests {suggestion:.3g}; the recipe trains at {given:.3g}")
    return ChosenLR(given, suggestion)


@dataclass(frozen=True)
class ChosenLR:
    value: float  # what the model trains at
    suggested: float | None = None  # the LR finder's suggestion, when it ran


def _checkpoints(folder: Path, validated: bool = True) -> list[ModelCheckpoint]:
    """best.ckpt (highest val_acc, when there is validation) and last.ckpt; two callbacks,
    as Lightning's save_last only saves when the monitored best changes."""
    kept = ((BEST_CHECKPOINT, "val_acc"),) if validated else ()
    return [ModelCheckpoint(dirpath=folder, filename=name, monitor=monitor, mode="max",
                            save_on_train_epoch_end=True, enable_version_counter=False)
            for name, monitor in (*kept, (LAST_CHECKPOINT, None))]


def fit(request: TrainRequest, started: float, lr: float, progress: bool = True,
        resume_from: Path | None = None, callbacks: Sequence[L.Callback] = (),
        prepared: Prepared | None = None) -> TrainResult:
    """Train as `request` says at learning rate `lr` into its run folder, which
    write_run_start began (petal.training.orchestrator does both); with `resume_from` (a
    last.ckpt), continue that run. `prepared` (from `prepare(request)`) saves redoing that
    work. The run folder is held (run_folder.writing) by global rank 0 while it trains."""
    with holding(request.out):
        return _fit(request, started, lr, progress, resume_from, callbacks, prepared)


def holding(run: Path) -> contextlib.AbstractContextManager:
    """Run folder `run` held for writing (run_folder.writing) by global rank 0; the other
    ranks of a multi-device run write nothing there."""
    return writing(run) if rank_zero_only.rank == 0 else contextlib.nullcontext()


def _fit(request: TrainRequest, started: float, lr: float, progress: bool,
         resume_from: Path | None, callbacks: Sequence[L.Callback],
         prepared: Prepared | None) -> TrainResult:
    prepared = prepared or prepare(request, progress)
    request = dataclasses.replace(request, recipe=prepared.recipe)  # the fitted batch size
    run = request.out
    log.info(describe_training(request.trainer.accelerator, precision_of(request)))
    recipe = dataclasses.replace(request.recipe, lr=lr)
    L.seed_everything(recipe.seed, verbose=False)
    module = prepared.module(recipe)
    resume_at = None
    if resume_from is not None:
        state = read_checkpoint(resume_from)
        resume_at = (state["epoch"] + 1, state["global_step"])
    history = HistoryWriter(run, started, resume_at, validated=request.validate)
    checkpoints = _checkpoints(run / CHECKPOINTS_DIR, request.validate)
    trainer = make_trainer(request, "run", progress=progress,
                           callbacks=[history, *checkpoints, *callbacks])
    n_val = len(prepared.split.val)
    if request.validate:
        log.info(f"Validation: {n_val} images" + (f", one image is {100 / n_val:.1f} points of "
                                                  "accuracy" if n_val < INTERVAL_BELOW else ""))
    else:
        log.info(f"The final model: trained on all {len(prepared.split.train)} photos, with no "
                 "validation (its figures are the cross-validation's)")
    with interruptible(trainer):
        trainer.fit(module, train_loader(prepared.train_set, recipe.batch_size, recipe.seed),
                    eval_loader(prepared.val_set, recipe.batch_size) if request.validate
                    else None, ckpt_path=str(resume_from) if resume_from else None,
                    weights_only=True)
    if not trainer.is_global_zero:
        return TrainResult(run, run / MODEL_DIR, 0.0, 0.0, 0, time.perf_counter() - started)
    return finish(request, prepared, module, started)


def finish(request: TrainRequest, prepared: Prepared, module: ClassifierModule,
           started: float) -> TrainResult:
    """Fit the novelty score and the temperature, save the model folder and the curves; print
    the summary. Both are fitted on photos the model scoring them did not train on: the
    out-of-fold ones when the run cross-validated (every photo, the larger sample), else the
    validation photos."""
    run, recipe = request.out, module.recipe
    spec, batch = prepared.eval_spec, recipe.batch_size
    train_features = collect_outputs(module, prepared.reference_set, spec, batch)[1]
    photos = len(prepared.split.train) + len(prepared.split.val)
    cross_validated = (run / OUT_OF_FOLD_FILE).is_file() or not request.validate
    if cross_validated:
        found = OutOfFold.load(run / OUT_OF_FOLD_FILE, len(prepared.split.classes), photos)
        logits, labels = found.logits, found.labels
        score = novelty.with_scores(train_features, found.novelty)
        fitted_on, held_out = "out-of-fold", "out-of-fold photos"
    else:
        logits, features, labels = collect_outputs(module, prepared.val_set, spec, batch)
        score = novelty.fit(train_features, features)
        fitted_on, held_out = "validation", "validation images"
    calibration = calibrate(logits, labels, fitted_on)
    _report_held_out_fits(score, calibration, held_out, len(prepared.split.train))
    rows = read_history(run / HISTORY_FILE)
    metrics = {"epochs": int(rows[-1]["epoch"]), "train_seconds": rows[-1]["elapsed_seconds"],
               "n_train": len(prepared.split.train)}
    if request.validate:  # the saved model on the validation photos, as inference sees them
        val_logits, _, val_labels = (collect_outputs(module, prepared.val_set, spec, batch)
                                     if cross_validated else (logits, None, labels))
        right = int((val_logits.argmax(axis=1) == val_labels).sum())
        metrics.update(_validation_metrics(rows, len(prepared.split.val), right))
    cross = (read_cross_validation(run / CROSS_VALIDATION_FILE, photos) if cross_validated
             else None)
    metrics["accuracy"] = accuracy_summary(metrics, cross)
    card = ModelCard(architecture=prepared.architecture, classes=prepared.split.classes,
                     input=spec, recipe=dataclasses.asdict(recipe), metrics=metrics,
                     data=str(Path(request.data).resolve()), split=f"../{SPLIT_FILE}",
                     novelty=score.settings(), calibration=calibration)
    model_dir = save_model_folder(run / MODEL_DIR, prepared.model.cpu().eval(), card,
                                  {novelty.NOVELTY_FILE: score.tensors()})
    use_none_photos(Path(request.data), model_dir, card)
    plot_history(run)
    seconds = time.perf_counter() - started
    accuracy = metrics["accuracy"]
    said = describe_accuracy(accuracy["correct"], accuracy["n"], interval=True)
    if request.validate:
        said += (f" after epoch {metrics['epochs']} (best {100 * metrics['best_val_acc']:.1f} % "
                 f"at epoch {metrics['best_epoch']})")
    log.info(f"Done: {accuracy['how']} accuracy {said}, {seconds:.0f} s; model: {model_dir}")
    return TrainResult(run, model_dir, accuracy["value"],
                       metrics.get("best_val_acc", accuracy["value"]),
                       metrics.get("best_epoch", metrics["epochs"]), seconds, recipe.lr)


def _validation_metrics(rows: list[dict[str, float]], n_val: int, correct: int) -> dict:
    """The held-out figures: the saved model's `correct` of `n_val` validation photos in
    float32, as every engine answers them (training validates in its own number format:
    in bfloat16 a borderline photo can fall the other way), and history.csv's best epoch."""
    best = max(rows, key=lambda r: r["val_acc"])
    return {"val_acc": round(correct / n_val, 6), "val_correct": correct,
            "val_interval": [round(v, 6) for v in wilson_interval(correct, n_val)],
            "val_loss": rows[-1]["val_loss"], "best_val_acc": best["val_acc"],
            "best_epoch": int(best["epoch"]), "n_val": n_val}


def accuracy_summary(metrics: dict, cross: dict | None) -> dict:
    """model.json's `accuracy`, what every reader of the card shows: the cross-validated
    figure when the run cross-validated (over every photo: the larger sample), else the
    held-out validation one; with its size and 95 % interval."""
    if cross is not None:  # checked counts (read_cross_validation); the rates follow
        correct, n = sum(cross["correct"]), sum(cross["n_val"])
        rates = [c / size for c, size in zip(cross["correct"], cross["n_val"])]
        return {"how": "cross-validated", "value": round(correct / n, 6), "correct": correct,
                "n": n, "interval": [round(v, 6) for v in wilson_interval(correct, n)],
                "folds": cross["folds"], "fold_accuracies": [round(r, 6) for r in rates],
                "fold_std": round(statistics.stdev(rates), 6)}
    correct, n = metrics["val_correct"], metrics["n_val"]
    return {"how": "validation", "value": round(correct / n, 6), "correct": correct, "n": n,
            "interval": metrics["val_interval"]}


def _report_held_out_fits(score: novelty.Novelty, calibration: dict, held_out: str,
                          n_train: int) -> None:
    """What the novelty threshold and the temperature rest on, with a warning when that is
    too few photos to set a threshold (SMALL_HELD_OUT)."""
    n = len(score.val_scores)
    share, low, high = novelty.unknown_share(n, score.keep)
    log.info(f"Novelty ({score.method}): fitted on {n_train} training images; above "
             f"{score.threshold:.3g} a photo is unknown, set to keep {100 * score.keep:.0f} % of "
             f"the {n} {held_out}: new photos of these classes will be called unknown "
             f"{100 * share:.1f} % of the time (95 % interval {100 * low:.1f}-{100 * high:.1f} %)")
    if n < SMALL_HELD_OUT:
        advice = ("more photos would make them firmer" if held_out.startswith("out-of-fold")
                  else "more photos, or cross-validation over every photo (--folds K, as many "
                  "as the smallest class has photos), would make them firmer")
        warnings.warn(f"only {n} {held_out} set the unknown threshold and the confidence "
                      f"calibration: both are rough; {advice}", PetalWarning, stacklevel=3)
    if calibration["applied"]:
        log.info(f"Confidence calibrated, so that an answer given at 90 % is right about 90 % "
                 f"of the time: temperature {calibration['temperature']:.3g} (the scores are "
                 f"divided by it), calibration error (ECE: the gap between confidence and how "
                 f"often it is right) {calibration['ece']:.3f} -> "
                 f"{calibration['ece_calibrated']:.3f} on the {calibration['n']} {held_out} "
                 "(a temperature fitted on each half, measured on the other)")
    else:
        log.info(f"Confidence left as trained: a temperature fitted on half of the "
                 f"{calibration['n']} {held_out} did not lower the calibration error (ECE: "
                 f"the gap between confidence and how often it is right) on the other half "
                 f"({calibration['ece']:.3f} -> {calibration['ece_calibrated']:.3f})")


def request_from_run(run: Path, trainer: TrainerOptions | None = None) -> TrainRequest:
    """Rebuild the request that started `run` (for --resume)."""
    if not is_run_folder(run):
        raise PetalError(f"{run} is not a petal run folder (no {CONFIG_FILE})")
    try:
        config = read_json(run / CONFIG_FILE)
        return TrainRequest(
            data=Path(config["data"]),
            recipe=recipe_from_json(config["recipe"]),
            out=run,
            model=config["model"],
            weights=config["weights"],
            split_file=run / config["split"],
            lr=config["lr"],
            trainer=trainer or TrainerOptions(**config["trainer"]),
            cache_dir=config.get("cache_dir"),
            data_description=config.get("data_description", ""),
            validate=bool(config.get("validate", True)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a damaged or edited file
        raise PetalError(f"{run / CONFIG_FILE} is not a config petal wrote ({exc!r}): start "
                         "the run again in a new --out folder") from exc


def resume(run: Path, started: float, progress: bool = True) -> TrainResult:
    with holding(run):  # before looking: the run may be training in another process
        last = last_checkpoint(run)
        if not last.is_file():
            raise PetalError(f"{run} has no {CHECKPOINTS_DIR}/{last.name} to resume from: "
                             "start the run again in a new --out folder")
        request = request_from_run(run)
        done = read_checkpoint(last)["epoch"] + 1
        log.info(f"Resuming {run} after epoch {done} of {request.recipe.epochs}"
                 + (" (all done: the model is saved again)" if done >= request.recipe.epochs
                    else ""))
        prepared = prepare(request, progress)
        lr = choose_lr(request, prepared, progress, resuming=True).value
        return fit(request, started, lr, progress, resume_from=last, prepared=prepared)
