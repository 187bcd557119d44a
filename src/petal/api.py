"""petal from Python: every command of the `petal` CLI as a function that returns an object.

    import petal
    petal.check("photos/")                              # DataCheck
    finding = petal.lr_find("photos/")                  # LRFinding: .suggestion, .plot()
    run = petal.train("photos/", out="runs/mine")       # Run: .accuracy, .history, .plot()
    petal.evaluate(run)                                  # Evaluation
    petal.review("photos/", out="review/")               # Review
    petal.compare("rose.jpg", [run, "runs/other"])       # Comparison
    petal.explain(run, "rose.jpg")                        # Explanation: where it looked
    petal.export(run)                                     # Export (a path: os.PathLike)
    petal.run("photos/", out="runs/main")                 # MainJob: .report
    petal.load(run).predict("rose.jpg")                   # Prediction

Each command of the CLI calls its function here and only prints what comes back. Wherever a
model is taken, a Run, a run folder, a model folder or an exported .onnx file will do.
Progress bars come from tqdm.auto (a widget in Jupyter); `progress=False` turns them off.
The functions speak through the `petal` logger (petal.log), shown on standard output unless
logging is configured, and raise PetalError, with the message the CLI prints, for anything
a user can fix: a wrong type or path is refused before any work.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from petal.errors import OUT_OF_MEMORY, PetalError, describe_os_error
from petal.log import show_by_default

if TYPE_CHECKING:
    from petal.data.check import DataCheck
    from petal.data.shards import Packed
    from petal.data.split import Split
    from petal.inference.classifier import Classifier, Prediction
    from petal.inference.export import Export
    from petal.jobs.compare import Comparison
    from petal.jobs.evaluate import Evaluation
    from petal.jobs.explain import Explanation
    from petal.jobs.main_job import MainJob
    from petal.jobs.predict import PredictionFile
    from petal.jobs.review import Review
    from petal.jobs.run import Run
    from petal.training.fit import TrainRequest
    from petal.training.lr_range import LRFinding

log = logging.getLogger(__name__)
PathLike = str | os.PathLike
P = ParamSpec("P")
R = TypeVar("R")
DEFAULT_RECIPE = "fast-transfer"


def public(function: Callable[P, R]) -> Callable[P, R]:
    """A public function: it speaks (petal.log.show_by_default), and an OSError or a
    MemoryError comes out as the PetalError the CLI would print."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        show_by_default()
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise PetalError(describe_os_error(exc)) from exc
        except MemoryError as exc:
            raise PetalError(OUT_OF_MEMORY) from exc
    return wrapper


# ---- arguments checked before any work ------------------------------------------------------

def _path(value: object, name: str) -> Path:
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bool) and os.fspath(value):
        return Path(value)
    raise PetalError(f"{name}: expected a path (a str or os.PathLike), got "
                     f"{type(value).__name__} {value!r}"[:200])


def _optional_path(value: object, name: str) -> Path | None:
    return None if value is None else _path(value, name)


def _text(value: object, name: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise PetalError(f"{name}: expected a non-empty str, got {type(value).__name__} "
                     f"{value!r}"[:200])


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _count(value: object, name: str, low: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return value
    raise PetalError(f"{name}: expected a whole number of at least {low}, got {value!r}"[:200])


def _choice(value: object, name: str, choices: Sequence[object]) -> object:
    if value in choices:
        return value
    raise PetalError(f"{name} {value!r}: use one of {', '.join(map(repr, choices))}"[:300])


def _overrides(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{field}={setting}" for field, setting in value.items()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PetalError(f"{name}: expected {{field: value}} or a list of 'field=value', got "
                     f"{value!r}"[:200])


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PetalError(f"{name}: expected True or False, got {value!r}"[:200])


def _folder(value: object, name: str) -> Path | None:
    """An output folder: None, a new path, or a folder (not a file)."""
    path = _optional_path(value, name)
    if path is not None and path.exists() and not path.is_dir():
        raise PetalError(f"{name} {path} is a file: give a folder")
    return path


def _devices(value: object) -> str:
    """Lightning's devices: "auto", a number of devices, or a list of device indices."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise PetalError(f"devices: expected 'auto', a number from 1, or device indices "
                     f"('0,1'), got {value!r}"[:200])


def _recipe(value: object) -> str:
    return DEFAULT_RECIPE if value is None else _text(value, "recipe")


def _progress(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    raise PetalError(f"progress: expected True, False or None, got {value!r}")


def _label_columns(value: object) -> tuple[str, str] | None:
    """label_columns: None (detected), "PATH,LABEL" or a pair of column names."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if (not isinstance(names, (list, tuple)) or len(names) != 2
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise PetalError(f"label_columns {value!r}: give the photo's and the label's column "
                         "names, as \"PATH,LABEL\" or a pair")
    return names[0].strip(), names[1].strip()


def _labels(labels: object, label_columns: object) -> dict:
    """scan_folder's keyword arguments for a labels file (none for class folders)."""
    if labels is None:
        if label_columns is not None:
            raise PetalError("label_columns (--label-columns) names the columns of a labels "
                             "file: give labels (--labels FILE) too")
        return {}
    return {"labels": _path(labels, "labels"), "label_columns": _label_columns(label_columns)}


def _lr(value: object) -> float | str | None:
    if value is None or value == "auto":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10:
        return float(value)
    raise PetalError(f"lr {value!r}: give a number above 0 up to 10, 'auto' (the LR finder's "
                     "suggestion) or None (the recipe's)")


# ---- the verbs ------------------------------------------------------------------------------

@public
def check(data: PathLike, *, labels: PathLike | None = None,
          label_columns: str | Sequence[str] | None = None,
          progress: bool | None = None) -> DataCheck:
    """What is in the image folder `data` and what petal will not use, and why: classes,
    unusable files (and rows of the labels file `labels`, read instead of class folders:
    `label_columns` "PATH,LABEL", else detected), exact and near copies, copies filed under
    two classes. `.usable` says whether it can be trained on (`.problem` why not)."""
    from petal.data.check import check_folder

    return check_folder(_path(data, "data"), progress=_progress(progress),
                        **_labels(labels, label_columns))


@public
def split(data: PathLike, *, out: PathLike | None = None, labels: PathLike | None = None,
          label_columns: str | Sequence[str] | None = None, seed: int = 0,
          val_fraction: float = 0.1, test_fraction: float = 0.0, keep_conflicts: bool = False,
          review: PathLike | None = None, progress: bool | None = None) -> Split:
    """A stratified split of `data` (its class folders, or the labels file `labels`) that
    keeps copies and near-copies on one side, a review file's decisions applied, as `petal
    data split` makes it; saved to `out` when given."""
    from petal.data.decisions import read_review_for
    from petal.data.scan import require_usable, scan_folder
    from petal.data.split import make_split
    from petal.fsutil import check_writable_file
    from petal.paths import refuse_inside

    folder, where = _path(data, "data"), _optional_path(out, "out")
    if where is not None:
        refuse_inside(where, folder)
        check_writable_file(where)  # before the scan
    index = scan_folder(folder, progress=_progress(progress), **_labels(labels, label_columns))
    require_usable(index)
    decisions = read_review_for(_path(review, "review"), index) if review is not None else None
    if decisions:
        log.info(f"Applying {decisions.summary()}")
    made = make_split(index, seed=_count(seed, "seed", 0), val_fraction=val_fraction,
                      test_fraction=test_fraction, keep_conflicts=_flag(keep_conflicts,
                                                                         "keep_conflicts"),
                      decisions=decisions)
    if where is not None:
        made.save(where)
    return made


@public
def train(data: PathLike | None = None, *, out: PathLike | None = None,
          labels: PathLike | None = None, label_columns: str | Sequence[str] | None = None,
          model: str | None = None, recipe: str | None = None,
          overrides: dict | Sequence[str] | None = None, split: PathLike | None = None,
          review: PathLike | None = None, lr: float | str | None = None,
          folds: int | None = None, final: str | None = None, precision: str = "auto",
          resume: PathLike | None = None, progress: bool | None = None,
          weights: str | None = None, cache_dir: PathLike | None = None,
          accelerator: str = "auto", devices: str | int = "auto", num_nodes: int = 1,
          strategy: str = "auto", started: float | None = None) -> Run:
    """Train a model on the image folder (or public data set name) `data` into run folder
    `out` (None: a new folder under runs/, said in the first line), as `petal train` does:
    its class folders, or the labels file `labels` (`label_columns` as for `check`); recipe
    (default fast-transfer) and model (default the recipe's), `overrides` of recipe fields
    ({"epochs": 3} or ["epochs=3"]), a split file to reuse, a review file's decisions, `lr` (a
    number, "auto" for the LR finder's suggestion, None for the recipe's), `folds`
    (None: cross-validate a split with under 100 validation photos; 0: never) and `final`
    ("all" or "split"). `resume=RUN` continues an interrupted run as it was started (no other
    option may be given). Ctrl-C (KeyboardInterrupt) leaves the run resumable."""
    from petal.jobs.run import Run
    from petal.training.precision import CHOICES

    started = time.perf_counter() if started is None else started
    show = _progress(progress)
    if resume is not None:
        return _resume(_path(resume, "resume"), started, show, {
            "data": data, "out": out, "labels": labels, "label_columns": label_columns,
            "model": model, "recipe": recipe, "overrides": overrides,
            "split": split, "review": review, "lr": lr, "folds": folds, "final": final,
            "weights": weights, "cache_dir": cache_dir,
            "precision": None if precision == "auto" else precision,
            "accelerator": None if accelerator == "auto" else accelerator,
            "devices": None if devices == "auto" else devices,
            "num_nodes": None if num_nodes == 1 else num_nodes,
            "strategy": None if strategy == "auto" else strategy})
    if data is None:
        raise PetalError("data is required (an image folder or a data set name), or resume=RUN")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int)
                              or folds == 1 or folds < 0):
        raise PetalError(f"folds {folds!r}: at least 2 (or 0: no cross-validation)")
    if final is not None:
        _choice(final, "final", ("all", "split"))
    _choice(precision, "precision", CHOICES)
    request = _train_request(
        _path(data, "data"), out=_folder(out, "out"),
        model=_optional_text(model, "model"), recipe=_recipe(recipe),
        overrides=_overrides(overrides, "overrides"), split=_optional_path(split, "split"),
        review=_optional_path(review, "review"), lr=_lr(lr),
        weights=_optional_text(weights, "weights"),
        cache_dir=_optional_path(cache_dir, "cache_dir"), precision=precision,
        accelerator=_text(accelerator, "accelerator"), devices=_devices(devices),
        num_nodes=_count(num_nodes, "num_nodes", 1), strategy=_text(strategy, "strategy"),
        labels=_labels(labels, label_columns))
    _train_new(request, folds, final, started, show)
    return Run(request.out)


def _train_request(data: Path, *, out: Path | None, model: str | None, recipe: str,
                   overrides: list[str], split: Path | None, review: Path | None,
                   lr: float | str | None, weights: str | None, cache_dir: Path | None,
                   precision: str, accelerator: str, devices: str, num_nodes: int,
                   strategy: str, labels: dict | None = None) -> TrainRequest:
    """The TrainRequest of a new run, every input checked (the output folder is outside the
    data folder)."""
    from petal.data.download import resolve_data
    from petal.paths import refuse_inside
    from petal.training.fit import TrainerOptions, TrainRequest
    from petal.training.recipes import get_recipe

    chosen = get_recipe(recipe, overrides)
    folder, description = resolve_data(data, cache_dir, labelled=bool(labels))
    name = model or chosen.model
    out = out or Path(os.environ.get("PETAL_RUN_DIR") or _default_run_dir(chosen.name, name))
    refuse_inside(out, folder, run_folder=True)
    return TrainRequest(data=folder, recipe=chosen, out=out, model=name, weights=weights,
                        split_file=split, review_file=review, lr=lr,
                        trainer=TrainerOptions(accelerator=accelerator, devices=devices,
                                               num_nodes=num_nodes, strategy=strategy,
                                               precision=precision),
                        cache_dir=str(cache_dir) if cache_dir is not None else None,
                        data_description=description, **(labels or {}))


def _train_new(request: TrainRequest, folds: int | None, final: str | None, started: float,
               progress: bool) -> None:
    """Check everything, say what will happen, then train (petal.training.orchestrator)."""
    from lightning.pytorch.utilities import rank_zero_only

    from petal.data.split import check_folds
    from petal.run_folder import is_run_folder
    from petal.training.fit import holding, scan_and_split
    from petal.training.orchestrator import chosen_folds, train_model
    from petal.training.trainer import check_trainer_options

    out = request.out
    check_trainer_options(request)  # before anything is written
    with holding(out):
        if rank_zero_only.rank == 0 and is_run_folder(out):
            raise PetalError(f"{out} already holds a run: continue it with --resume {out}, "
                             "or choose another --out")
        log.info(f"Training {request.model_name} with recipe {request.recipe.name} on "
                 f"{request.data_description} -> {out}")
        scanned = scan_and_split(request, progress)
        several = _several_processes(request)
        if several and folds:
            raise PetalError("cross-validation trains on one device: give --folds 0, or train "
                             "on one device")
        chosen = 0 if several else chosen_folds(folds, scanned[1])
        if chosen:
            check_folds(scanned[1], chosen)  # before any training
        elif final is not None:
            raise PetalError("--final chooses the model trained after cross-validating: give "
                             "--folds K too, or leave --final out")
        # The worker processes Lightning starts for a multi-device run re-run this command
        # and find the run folder here.
        os.environ["PETAL_RUN_DIR"] = str(out)
        try:
            train_model(request, scanned, folds=chosen, final=final or "all",
                        progress=progress, started=started)
        finally:
            os.environ.pop("PETAL_RUN_DIR", None)


def _resume(run: Path, started: float, progress: bool, others: dict[str, object]) -> Run:
    from petal.jobs.run import Run
    from petal.run_folder import is_run_folder
    from petal.training.fit import resume

    given = [name for name, value in others.items() if value is not None and value != []]
    if given:
        raise PetalError(f"--resume continues {run} as it was started (its config.json): "
                         f"leave out {', '.join(given)}, or start a new run with them")
    if not is_run_folder(run):
        raise PetalError(f"{run} is not a petal run folder (no config.json): give the run "
                         "folder of the training to continue")
    resume(run, started, progress=progress)
    return Run(run)


def _several_processes(request: TrainRequest) -> bool:
    """Whether the training runs in several processes (devices, nodes, or torchrun)."""
    devices = str(request.trainer.devices)
    return (int(os.environ.get("WORLD_SIZE", "1")) > 1 or request.trainer.num_nodes > 1
            or (devices.isdigit() and int(devices) > 1))


def _default_run_dir(recipe: str, model: str) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PetalError("several processes were started for this run (torchrun, SLURM): "
                         "give them one run folder with --out")
    return f"runs/{recipe}_{model.replace(':', '-')}_{time.strftime('%Y%m%d-%H%M%S')}"


@public
def lr_find(data: PathLike, *, model: str | None = None, recipe: str | None = None,
            overrides: dict | Sequence[str] | None = None, rule: str | None = None,
            split: PathLike | None = None, review: PathLike | None = None,
            weights: str | None = None, out: PathLike | None = None,
            cache_dir: PathLike | None = None, progress: bool | None = None,
            labels: PathLike | None = None, label_columns: str | Sequence[str] | None = None
            ) -> LRFinding:
    """The learning-rate range test on `data`'s training photos (its class folders, or the
    labels file `labels`, as for `check`) (as `petal lr-find`): the
    loss at each rate, a suggestion by `rule` (default floor: where the loss stops falling;
    valley, steep and minimum are fastai's), and the plot written to `out`/lr_find.png when
    `out` is given."""
    from petal.data.download import resolve_data
    from petal.paths import refuse_inside
    from petal.run_folder import LR_FIND_PLOT
    from petal.training.fit import TrainRequest, find_lr, prepare
    from petal.training.lr_range import RULES, SUGGESTION_RULE
    from petal.training.recipes import get_recipe

    chosen_rule = str(_choice(rule or SUGGESTION_RULE, "rule", sorted(RULES)))
    chosen = get_recipe(_recipe(recipe),
                        _overrides(overrides, "overrides"))
    folder, _ = resolve_data(_path(data, "data"), _optional_path(cache_dir, "cache_dir"),
                             labelled=labels is not None)
    where = _optional_path(out, "out")
    if where is not None:
        refuse_inside(where, folder)
    request = TrainRequest(data=folder, recipe=chosen, out=where or Path("."),
                           model=_optional_text(model, "model"),
                           weights=_optional_text(weights, "weights"),
                           cache_dir=None if cache_dir is None else str(cache_dir),
                           split_file=_optional_path(split, "split"),
                           review_file=_optional_path(review, "review"),
                           **_labels(labels, label_columns))
    show = _progress(progress)
    prepared = prepare(request, show)
    return find_lr(request, prepared, where / LR_FIND_PLOT if where is not None else None,
                   show, chosen_rule)


@public
def evaluate(model: PathLike, *, data: PathLike | None = None, unknown: PathLike | None = None,
             tta: bool = False, split: PathLike | None = None, part: str = "val",
             class_map: PathLike | dict[str, str] | None = None, include_training: bool = False,
             top_k: int = 2, out: PathLike | None = None, cache_dir: PathLike | None = None,
             progress: bool | None = None) -> Evaluation:
    """Accuracy (with its 95 % interval), per-class precision, recall and F1, the confusion
    matrix, calibration and the worst mistakes of `model` (as `petal evaluate`), on its own
    validation photos, on the image folder `data`, or on a `part` of a `split` file; photos
    it trained on are left out unless `include_training`. `unknown`: a folder of photos of
    none of its classes, to measure how it rejects them. Figures and metrics.json are written
    to `out` (default RUN/eval or RUN/eval-NAME)."""
    from petal.jobs.evaluate import EvalRequest
    from petal.jobs.evaluate import evaluate as run_evaluation
    from petal.paths import refuse_cache_inside

    _choice(part, "part", ("train", "val", "test"))
    if isinstance(class_map, dict) and not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in class_map.items()):
        raise PetalError("class_map: expected {folder: class} with both names str")
    folder, where = _optional_path(data, "data"), _optional_path(cache_dir, "cache_dir")
    if folder is not None:
        refuse_cache_inside(folder, where)
    return run_evaluation(EvalRequest(
        _path(model, "model"), data=folder, split_file=_optional_path(split, "split"),
        class_map=class_map if isinstance(class_map, dict) else _optional_path(class_map,
                                                                                "class_map"),
        tta=_flag(tta, "tta"), out=_folder(out, "out"), part=part,
        top_k=_count(top_k, "top_k", 1), cache_dir=where, progress=_progress(progress),
        include_training=_flag(include_training, "include_training"),
        unknown=_optional_path(unknown, "unknown")))


@public
def review(data: PathLike, *, labels: PathLike | None = None,
           label_columns: str | Sequence[str] | None = None, model: str = "efficientnet_lite0",
           folds: int = 5, out: PathLike | None = None, cache_dir: PathLike | None = None,
           progress: bool | None = None, rank: str = "self-confidence") -> Review:
    """Likely label mistakes, hard photos and outliers in the image folder `data` (as `petal
    data review`; or the labels file `labels`, as for `check`), from out-of-fold predictions
    on `model`'s pretrained features; with
    `out`, review.csv (your decisions), review.html and contact sheets are written there.
    `rank`: "self-confidence" (the given label's out-of-fold probability, lowest first) or
    "margin" (how far the suggested class's exceeds it) orders the likely mistakes."""
    from petal.jobs.review import review as run_review
    from petal.jobs.review_page import write_review
    from petal.paths import refuse_cache_inside, refuse_inside

    folder, where = _path(data, "data"), _folder(out, "out")
    cache = _optional_path(cache_dir, "cache_dir")
    if where is not None:
        refuse_inside(where, folder)
    refuse_cache_inside(folder, cache)
    found = run_review(folder, model=_text(model, "model"), folds=_count(folds, "folds", 2),
                       cache_dir=cache, progress=_progress(progress),
                       rank=_text(rank, "rank"), **_labels(labels, label_columns))
    if where is not None:
        written = write_review(found, where)
        log.info(f"Wrote {where}/: {', '.join(written)}")
    return found


@public
def predict(model: PathLike | Classifier, paths: PathLike | Sequence[PathLike], *,
            out: PathLike | None = None, top_k: int = 5, workers: int = 0,
            batch_size: int = 32, engine: str | None = None, device: str = "auto",
            keep_known: float | None = None, reject: bool = True,
            progress: bool | None = None) -> list[Prediction] | PredictionFile:
    """The top `top_k` classes of image files and folders (walked recursively), or of the
    photos in WebDataset shards (paths or http(s) URLs ending in .tar, brace ranges allowed:
    petal.data.shards), by `model` (a path, a Run or a Classifier), as `petal predict`: a
    list of Predictions (a photo that cannot be read skipped, logged), or with `out`, a CSV
    file, the rows written as they are made, resumable after a kill (petal.jobs.predict),
    and a PredictionFile; `workers` processes decode the photos (0: this one)."""
    from petal.inference.classifier import Classifier
    from petal.inference.classifier import load as load_classifier
    from petal.jobs.predict import predict_to_file

    named = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    if isinstance(named, (bytes, dict)) or not isinstance(named, Sequence) or not named:
        raise PetalError("paths: expected an image file or folder, or a list of them")
    files = photos_named([_text(os.fspath(p) if isinstance(p, os.PathLike) else p, "paths")
                          for p in named])
    if not _flag(reject, "reject") and keep_known is not None:
        raise PetalError("keep_known and reject=False (--keep-known and --no-reject) "
                         "contradict each other: give one")
    classifier = (model if isinstance(model, Classifier)
                  else load_classifier(_path(model, "model"), _optional_text(engine, "engine"),
                                       device=device))
    if not reject or keep_known is not None:
        classifier = classifier.keeping(keep_known if reject else None)
    classifier.batch_size = _count(batch_size, "batch_size", 1)
    k, where = _count(top_k, "top_k", 1), _optional_path(out, "out")
    if where is not None:
        from petal.paths import refuse_inside_model_data

        refuse_inside_model_data(where, classifier.card.data)
        return predict_to_file(classifier, files, where, k, _count(workers, "workers", 0),
                               _progress(progress))
    from petal.jobs.predict import predict_in_memory

    return predict_in_memory(classifier, files, k, _count(workers, "workers", 0),
                             _progress(progress))


def photos_named(paths: Sequence[str]) -> list[Path] | Iterator:
    """The files of files and folders (walked), or the photos streamed from shards; PetalError
    for a mix of both, or for no file at all."""
    import itertools

    from petal.data.shards import is_shard_source, samples
    from petal.fsutil import walk_files

    shards = [is_shard_source(p) for p in paths]
    if any(shards):
        if not all(shards):
            raise PetalError("give shards (.tar, or http(s) URLs) or files and folders, not both")
        return itertools.chain.from_iterable(samples(p) for p in paths)
    files = walk_files(paths)
    if not files:
        raise PetalError(f"no files in {', '.join(paths)}")
    return files


@public
def pack(data: PathLike, *, out: PathLike, labels: PathLike | None = None,
         label_columns: str | Sequence[str] | None = None, shard_mb: float = 256,
         progress: bool | None = None) -> Packed:
    """The usable photos of `data` (its class folders, or the labels file `labels`, as for
    `check`) written as WebDataset tar shards of about `shard_mb` MB into the new folder
    `out` (as `petal data pack`), for `predict` to read from a disk or an http(s) server."""
    from petal.data.scan import scan_folder
    from petal.data.shards import pack as pack_shards
    from petal.paths import refuse_inside

    folder, where = _path(data, "data"), _path(out, "out")
    refuse_inside(where, folder)
    if isinstance(shard_mb, bool) or not isinstance(shard_mb, (int, float)) or shard_mb <= 0:
        raise PetalError(f"shard_mb {shard_mb!r}: give a size in MB above 0")
    index = scan_folder(folder, progress=_progress(progress), **_labels(labels, label_columns))
    for item in index.rejected[:20]:
        log.warning(f"skipped {item.path}: {item.message}")
    return pack_shards(index, where, round(shard_mb * 10**6))


@public
def compare(image: PathLike, models: Sequence[PathLike | Classifier], *, top_k: int = 3,
            out: PathLike | None = None, engine: str | None = None, device: str = "auto",
            keep_known: float | None = None, reject: bool = True,
            truth: str | None = None) -> Comparison:
    """Each of `models` on the photo `image`, side by side (as `petal compare`); the figure
    written to `out` when given; `truth`, the photo's class, drawn green."""
    from petal.inference.classifier import Classifier
    from petal.jobs.compare import compare as run_compare

    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence) or not models:
        raise PetalError("models: expected a list of models (paths, runs or classifiers)")
    for model in models:
        if not isinstance(model, Classifier):
            _path(model, "models")
    return run_compare(_path(image, "image"), list(models), top_k=_count(top_k, "top_k", 1),
                       out=_optional_path(out, "out"), engine=engine, device=device,
                       keep_known=keep_known, reject=_flag(reject, "reject"),
                       truth=_optional_text(truth, "truth"))


@public
def explain(model: PathLike | Classifier, images: PathLike | Sequence[PathLike], *,
            label: str | None = None, out: PathLike | None = None, engine: str | None = None,
            device: str = "auto", keep_known: float | None = None, reject: bool = True
            ) -> Explanation | list[Explanation]:
    """Where `model` (a path, a Run or a Classifier) looked in each photo for its top class,
    or for `label` (as `petal explain`): `.figure()` draws the photo, the heat map over it
    and the top 3; with `out`, a folder, each is written there as NAME.png. One photo gives
    an Explanation (PetalError if it cannot be read); a list gives a list, a photo that
    cannot be read skipped with a PetalWarning."""
    from petal.inference.classifier import Classifier
    from petal.inference.classifier import load as load_classifier
    from petal.jobs.explain import explain_all

    one = isinstance(images, (str, os.PathLike))
    paths = [_path(images, "images")] if one else None
    if paths is None:
        if isinstance(images, (bytes, dict)) or not isinstance(images, Sequence) or not images:
            raise PetalError("images: expected a photo's path or a list of them")
        paths = [_path(image, "images") for image in images]
    if not _flag(reject, "reject") and keep_known is not None:
        raise PetalError("keep_known and reject=False (--keep-known and --no-reject) "
                         "contradict each other: give one")
    where = _folder(out, "out")
    classifier = (model if isinstance(model, Classifier)
                  else load_classifier(_path(model, "model"), _optional_text(engine, "engine"),
                                       device=device))
    if not reject or keep_known is not None:
        classifier = classifier.keeping(keep_known if reject else None)
    if one:
        from petal.jobs.explain import explain as explain_one
        from petal.jobs.explain import figure_names

        figure = figure_names(paths, where)[0] if where is not None else None
        return explain_one(classifier, paths[0], _optional_text(label, "label"), figure)
    return explain_all(classifier, paths, _optional_text(label, "label"), where)


@public
def export(model: PathLike, *, out: PathLike | None = None, format: str = "onnx",  # noqa: A002
           quantize: bool = False, opset: int | None = None,
           calibration: PathLike | None = None) -> Export:
    """Write `model` as ONNX (or TorchScript), with its card inside and beside the file (as
    `petal export`); `quantize`: an int8 copy calibrated on 200 of its training photos (or
    the photos in `calibration`). The result is the file's path (os.PathLike) with the parity
    check's figures."""
    from petal.inference.export import export as run_export

    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)):
        raise PetalError(f"opset: expected a whole number, got {opset!r}"[:200])
    return run_export(_path(model, "model"), fmt=_text(format, "format"),
                      out=_optional_path(out, "out"), opset=opset,
                      quantize=_flag(quantize, "quantize"), calibration=_optional_path(calibration,
                                                                          "calibration"))


@public
def run(data: PathLike, *, out: PathLike | None = None, labels: PathLike | None = None,
        label_columns: str | Sequence[str] | None = None, recipes: str = "fast",
        lr_find: bool = True, scratch_model: str = "resnet9",
        transfer_model: str = "efficientnet_lite0", weights: str | None = None,
        scratch_overrides: dict | Sequence[str] | None = None,
        transfer_overrides: dict | Sequence[str] | None = None,
        review: PathLike | None = None, cache_dir: PathLike | None = None,
        progress: bool | None = None, started: float | None = None) -> MainJob:
    """The whole experiment of the original write-up (as `petal run`): check, split, the LR
    finder and training for a network from scratch and a pretrained one, evaluation,
    predictions, comparisons; `.report` is the path of report.html. `labels`,
    `label_columns`: as for `check`."""
    from petal.data.download import resolve_data
    from petal.jobs.main_job import RECIPE_SETS, MainJobRequest, run_main_job
    from petal.paths import refuse_inside

    started = time.perf_counter() if started is None else started
    _choice(recipes, "recipes", tuple(RECIPE_SETS))
    folder, description = resolve_data(_path(data, "data"),
                                       _optional_path(cache_dir, "cache_dir"),
                                       labelled=labels is not None)
    where = _optional_path(out, "out") or Path(f"runs/main_{time.strftime('%Y%m%d-%H%M%S')}")
    refuse_inside(where, folder, run_folder=True)
    job = MainJobRequest(
        data=folder, out=where, data_description=description,
        scratch_model=_text(scratch_model, "scratch_model"),
        transfer_model=_text(transfer_model, "transfer_model"),
        weights=_optional_text(weights, "weights"), recipes=recipes,
        scratch_overrides=_overrides(scratch_overrides, "scratch_overrides"),
        transfer_overrides=_overrides(transfer_overrides, "transfer_overrides"),
        cache_dir=None if cache_dir is None else str(cache_dir), progress=_progress(progress),
        lr_find=_flag(lr_find, "lr_find"), review_file=_optional_path(review, "review"),
        **_labels(labels, label_columns))
    log.info(f"petal run: {recipes} recipes on {description} -> {where}")
    return run_main_job(job, started)


@public
def load(path: PathLike, engine: str | None = None, threads: int | None = None,
         device: str | None = None) -> Classifier:
    """A ready-to-predict Classifier from a Run, a run folder, a model folder or an exported
    .onnx file; engine "torch" or "onnx", chosen from the path when not given; device "auto"
    (None: a GPU when one can be used), "cpu", "cuda" or "cuda:N"."""
    from petal.inference.classifier import load as load_classifier

    if threads is not None:
        _count(threads, "threads", 1)
    return load_classifier(_path(path, "path"), engine=_optional_text(engine, "engine"),
                           threads=threads, device=_optional_text(device, "device"))
