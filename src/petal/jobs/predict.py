"""Predictions of many photos written as they are made (`petal predict --out FILE.csv`,
`petal.predict(..., out=)`), resumable: a killed job started again continues after the last
row written, none lost and none doubled.

The rows are `petal predict --csv`'s (path, rank, label, probability, unknown, novelty; cells
escaped for spreadsheets). Beside FILE, FILE.progress (JSON) holds how many bytes of FILE are
whole rows, with the model, the top-k and the file's header they were made with; it is
replaced atomically after each batch's rows are on disk (flushed, fsync'd). Started again,
petal cuts FILE back to that length (a row half written when the job was killed goes), reads
the photos already there and predicts the others; another model or top-k is refused. A FILE
without its FILE.progress is not petal's to extend, and is refused.

Photos are decoded in `workers` processes (none: in this one), in order, a chunk at a time,
while the model answers the previous batch; progress is a bar on a terminal, else a line
every LOG_EVERY_S seconds with the rate and the time left.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from petal.data.image import ImageLoadError, load_image
from petal.data.shards import Sample
from petal.errors import PetalError, PetalWarning
from petal.fsutil import atomic_write_json, check_writable_file, read_json
from petal.inference.classifier import Classifier, Prediction
from petal.inference.preprocess import image_to_array
from petal.inference.shift import MIN_PHOTOS
from petal.models.spec import InputSpec
from petal.spreadsheet import csv_writer, escape_cell, unescape_cell

log = logging.getLogger(__name__)

COLUMNS = ("path", "rank", "label", "probability", "unknown", "novelty")
PROGRESS_SUFFIX = ".progress"
CHUNK = 256  # photos handed to the decoding workers at once
LOG_EVERY_S = 30.0


@dataclass(frozen=True)
class PredictionFile:
    """What `predict_to_file` did: the file, the photos in it, and this run's share."""

    path: Path
    photos: int  # photos whose rows the file holds now
    resumed: int  # of them, predicted by an earlier run
    skipped: list[str]  # files this run could not read ("path: why")
    unknown: int  # photos this run called unknown
    seconds: float
    novelty: np.ndarray  # this run's photos' novelty scores (empty without a novelty score)

    def summary(self) -> str:
        new = self.photos - self.resumed
        said = (f"Predicted {new} photo(s) in {self.seconds:.0f} s ({self.unknown} unknown)"
                + (f", after {self.resumed} from an earlier run" if self.resumed else "")
                + f", skipped {len(self.skipped)}: {self.path} holds {self.photos}")
        return said

    def __repr__(self) -> str:
        return f"PredictionFile({str(self.path)!r}: {self.photos} photos)"


def rows_of(prediction: Prediction) -> list[list[str]]:
    """A prediction's CSV rows, one a rank (COLUMNS), text cells escaped for spreadsheets."""
    novelty = "" if prediction.novelty is None else f"{prediction.novelty:.6f}"
    return [[escape_cell(prediction.source), str(rank), escape_cell(label), f"{p:.6f}",
             str(prediction.unknown).lower(), novelty]
            for rank, (label, p) in enumerate(zip(prediction.labels, prediction.probabilities), 1)]


def _header() -> bytes:
    text = io.StringIO()
    csv_writer(text).writerow(COLUMNS)
    return text.getvalue().encode()


def _identity(classifier: Classifier, top_k: int) -> dict:
    """What the rows depend on: the model (its card's digest: a model trained again differs),
    its classes, the top-k and the share of known photos kept."""
    card = json.dumps(classifier.card.to_json(), sort_keys=True, default=str)
    return {"model": hashlib.sha256(card.encode()).hexdigest()[:16],
            "classes": list(classifier.classes), "top_k": top_k,
            "keep": None if classifier.novelty is None else classifier.novelty.keep}


def _resume(out: Path, progress: Path, identity: dict) -> set[str]:
    """The photos `out` already holds (cut back to its last whole batch); PetalError for a
    file made otherwise."""
    if not progress.is_file():
        if out.exists() and out.stat().st_size:
            raise PetalError(f"{out} exists and is not a file `petal predict --out` was "
                             f"writing (no {progress.name} beside it): give another --out, "
                             "or delete it")
        return set()
    try:
        state = read_json(progress)
        whole, made = int(state["bytes"]), {k: state[k] for k in identity}
    except (ValueError, KeyError, TypeError) as exc:
        raise PetalError(f"{progress} is not what petal writes ({exc!r}): delete {out} and "
                         "it to start again") from exc
    if made != identity:
        changed = ", ".join(k for k in identity if made[k] != identity[k])
        raise PetalError(f"{out} was made with another {changed}: give another --out to "
                         "predict with these settings")
    if not out.is_file() or out.stat().st_size < whole:
        raise PetalError(f"{out} is shorter than {progress.name} says it was written: it was "
                         "changed since; delete both to start again")
    with open(out, "r+b") as handle:
        handle.truncate(whole)  # a batch half written when the job was killed
    with open(out, encoding="utf-8", errors="surrogateescape", newline="") as text:
        rows = csv.reader(text)  # a row at a time: the file may hold millions
        if next(rows, None) != list(COLUMNS):
            raise PetalError(f"{out} does not start with the header petal writes: delete it "
                             f"and {progress.name} to start again")
        return {unescape_cell(row[0]) for row in rows if len(row) > 1 and row[1] == "1"}


Item = Path | Sample  # a photo file, or a photo read from a shard (petal.data.shards)


def name_of(item: Item) -> str:
    return item.name if isinstance(item, Sample) else str(item)


def _decode(task: tuple[str | bytes, InputSpec]) -> np.ndarray | str:
    """A photo (a path, or its bytes) as the model sees it, or why it cannot be read (in a
    worker process)."""
    source, spec = task
    try:
        return image_to_array(load_image(source, min_size=spec.resize_size), spec)
    except ImageLoadError as exc:
        return exc.message


def _decoded(items: Iterable[Item], spec: InputSpec, pool: Executor | None
             ) -> Iterator[tuple[str, np.ndarray | str]]:
    """(name, array or why not) of each item, in order, CHUNK at a time."""
    items = iter(items)
    while chunk := list(itertools.islice(items, CHUNK)):
        tasks = [(item.data if isinstance(item, Sample) else str(item), spec) for item in chunk
                 if not (isinstance(item, Sample) and item.data is None)]
        results = iter(pool.map(_decode, tasks, chunksize=8) if pool else map(_decode, tasks))
        for item in chunk:
            unread = isinstance(item, Sample) and item.data is None
            yield name_of(item), item.why if unread else next(results)


class _Progress:
    """A bar on a terminal, else a log line every LOG_EVERY_S seconds with the rate and ETA."""

    def __init__(self, total: int | None, show: bool) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()
        self.bar = tqdm(total=total, desc="Predicting", unit="img", leave=False,
                        disable=not show)
        self.said = self.started

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        now = time.perf_counter()
        if self.bar.disable and now - self.said >= LOG_EVERY_S:
            self.said = now
            rate = self.done / (now - self.started)
            if self.total is None:  # a stream of shards: no end known
                log.info(f"{self.done} photos, {rate:.0f} a second")
                return
            left = (self.total - self.done) / rate if rate else float("inf")
            log.info(f"{self.done} of {self.total} photos ({100 * self.done / self.total:.1f} "
                     f"%), {rate:.0f} a second, about {left / 60:.0f} min left")

    def close(self) -> None:
        self.bar.close()


def predicted_batches(classifier: Classifier, items: Iterable[Item], top_k: int,
                      workers: int = 0, progress: bool = True,
                      skipped: list[str] | None = None) -> Iterator[list[Prediction]]:
    """Predictions of `items` (files, or photos read from shards), a batch at a time, the
    photos decoded in `workers` processes; one that cannot be read is added to `skipped`
    ("name: why")."""
    pool = ProcessPoolExecutor(workers, mp_context=_context()) if workers > 0 else None
    shown = _Progress(len(items) if isinstance(items, Sized) else None, progress)
    try:
        arrays, sources = [], []
        for name, decoded in _decoded(items, classifier.spec, pool):
            if isinstance(decoded, str):
                if skipped is not None:
                    skipped.append(f"{name}: {decoded}")
                shown.update(1)
                continue
            arrays.append(decoded)
            sources.append(name)
            if len(arrays) == classifier.batch_size:
                yield classifier.top_k(classifier.answer(np.stack(arrays)), sources, top_k)
                shown.update(len(arrays))
                arrays, sources = [], []
        if arrays:
            yield classifier.top_k(classifier.answer(np.stack(arrays)), sources, top_k)
            shown.update(len(arrays))
    finally:
        shown.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _say_skipped(skipped: list[str]) -> None:
    for line in skipped[:20]:
        log.warning(f"skipped {line}")
    if len(skipped) > 20:
        log.warning(f"... and {len(skipped) - 20} more file(s) skipped")


def predict_in_memory(classifier: Classifier, items: Iterable[Item], top_k: int = 5,
                      workers: int = 0, progress: bool = True) -> list[Prediction]:
    """Predictions of `items` as a list; PetalError when none could be read. A list that is
    less like the training photos than the card's held-out ones warns so (PetalWarning)."""
    skipped: list[str] = []
    predictions = [p for batch in predicted_batches(classifier, items, top_k, workers,
                                                    progress, skipped) for p in batch]
    _say_skipped(skipped)
    if not predictions:
        raise PetalError(f"no image could be predicted: all {len(skipped)} were skipped")
    shift = classifier.shift(predictions) if len(predictions) >= MIN_PHOTOS else None
    if shift is not None and shift.shifted:
        warnings.warn(shift.message(), PetalWarning, stacklevel=3)
    return predictions


def predict_to_file(classifier: Classifier, items: Iterable[Item], out: str | os.PathLike,
                    top_k: int = 5, workers: int = 0, progress: bool = True
                    ) -> PredictionFile:
    """Predict `items` (files, or photos read from shards) into CSV file `out` as they go,
    resumably (module docstring)."""
    started = time.perf_counter()
    out = Path(out)
    progress_file = out.with_name(out.name + PROGRESS_SUFFIX)
    check_writable_file(out)
    check_writable_file(progress_file)
    identity = _identity(classifier, top_k)
    done = _resume(out, progress_file, identity)
    todo: Iterable[Item] = (
        [item for item in items if name_of(item) not in done] if isinstance(items, Sized)
        else (item for item in items if name_of(item) not in done))
    if done:
        log.info(f"{out}: {len(done)} photo(s) predicted by an earlier run; "
                 + (f"{len(todo)} to go" if isinstance(todo, Sized) else "the rest to go"))
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    novelty: list[float] = []
    unknown, photos = 0, len(done)
    with open(out, "ab") as handle:
        if handle.tell() == 0:
            handle.write(_header())
            _commit(handle, progress_file, identity)
        for batch in predicted_batches(classifier, todo, top_k, workers, progress, skipped):
            _write(batch, handle)
            _commit(handle, progress_file, identity)
            photos += len(batch)
            unknown += sum(p.unknown for p in batch)
            novelty += [p.novelty for p in batch if p.novelty is not None]
    _say_skipped(skipped)
    return PredictionFile(out, photos, len(done), skipped, unknown,
                          time.perf_counter() - started, np.array(novelty, np.float32))


def _context():  # noqa: ANN202 - a multiprocessing context
    from petal.system import worker_context

    return worker_context()


def _write(predictions: list[Prediction], handle: io.BufferedWriter) -> None:
    """One batch's rows appended to `handle`."""
    text = io.StringIO()
    writer = csv_writer(text)
    for prediction in predictions:
        writer.writerows(rows_of(prediction))
    handle.write(text.getvalue().encode("utf-8", "surrogateescape"))


def _commit(handle: io.BufferedWriter, progress: Path, identity: dict) -> None:
    """Make what `handle` holds durable, then say so in `progress`."""
    handle.flush()
    os.fsync(handle.fileno())
    atomic_write_json(progress, {**identity, "bytes": handle.tell()})
