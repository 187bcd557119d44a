"""The labelling queue: `petal label PHOTOS --model RUN --out NEW_DATA` shows unlabelled photos
in the order in which labelling them should help the model most (petal.analysis.queue),
with the model's guess pre-selected, and records each decision in NEW_DATA
(petal.data.new_labels) as it is made. The page is petal.serve.local_page's.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from shlex import quote

import numpy as np
from tqdm.auto import tqdm

from petal.analysis.queue import margins, queue_with_unknown_last
from petal.data.decisions import read_review_for
from petal.data.image import ImageLoadError
from petal.data.new_labels import LABELS_CSV, LinkedData, NewLabels, check_place
from petal.data.scan import NONE_FOLDER, ImageRecord, none_photos, scan_folder, scan_unlabelled
from petal.errors import PetalError
from petal.inference.classifier import Classifier, load
from petal.inference.shift import MIN_PHOTOS, ShiftCheck, check_shift
from petal.serve.local_page import Decision, shown

log = logging.getLogger(__name__)

CHUNK = 64  # photos decoded and answered at once: bounds the memory of a large folder


def model_outputs(classifier: Classifier, files: list[Path], progress: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(probabilities, features, novelty or None) of the photos at `files`."""
    said = []
    bar = tqdm(total=len(files), desc="Scoring photos", unit="img", disable=not progress,
               leave=False)
    for start in range(0, len(files), CHUNK):
        arrays = np.stack([classifier.prepare(f) for f in files[start:start + CHUNK]])
        said.append(classifier.answer(arrays))
        bar.update(len(arrays))
    bar.close()
    probabilities = np.concatenate([a.probabilities for a in said])
    features = np.concatenate([a.features for a in said])
    novelty = (None if classifier.novelty is None
               else np.concatenate([a.novelty for a in said]))
    return probabilities, features, novelty


def linked_data(original: Path, classes: list[str], review: str | Path | None,
                progress: bool) -> LinkedData:
    """The usable photos of data folder `original` with their classes, the review file's
    decisions applied (excluded ones left out, relabelled ones under their new class), and
    its photos of none of the classes (NONE_FOLDER) as they are."""
    index = scan_folder(original, progress=progress)
    missing = [c for c in classes if c not in index.classes]
    if missing:
        raise PetalError(f"{original} has no folder for the model's class(es) "
                         f"{', '.join(missing)}: give the folder the model was trained on")
    decisions = read_review_for(review, index) if review is not None else None
    kept = decisions.apply(index.images) if decisions else index.images
    none = [(photo.relative_to(original).as_posix(), NONE_FOLDER)
            for photo in none_photos(original)]
    return LinkedData(original, [(r.path, r.label) for r in kept] + none)


class LabelQueue:
    """Unlabelled photos, the model's view of them and the decisions so far, as the labelling
    page's DecisionSource."""

    def __init__(self, photos: str | Path, model: str | Path, out: str | Path,
                 copy: bool = False, original: str | Path | None = None,
                 review: str | Path | None = None, engine: str | None = None,
                 device: str | None = None, progress: bool = True) -> None:
        self.photos = Path(photos)
        self.model = Path(model)
        check_place(Path(out).absolute(), self.photos,
                    Path(original) if original is not None else None)  # before any work
        self.classifier = load(model, engine, device=device)
        self.classes = self.classifier.classes
        if review is not None and original is None:
            raise PetalError("--review applies to the photos of --data: give --data too")
        made = (Path(out) / LABELS_CSV).is_file()
        linked = (linked_data(Path(original), self.classes, review, progress)
                  if original is not None and not made else None)
        index = scan_unlabelled(self.photos, progress=progress)
        if not index.images:
            raise PetalError(f"{self.photos} has no usable photo"
                             + (f" ({len(index.rejected)} file(s) rejected)"
                                if index.rejected else ""))
        self.rejected = index.rejected
        self.new = NewLabels.open(out, self.classes, self.photos, copy, linked)
        self.images: list[ImageRecord] = index.images
        files = [self.source(i) for i in range(len(self.images))]
        try:
            probabilities, features, self.novelty = model_outputs(self.classifier, files,
                                                                  progress)
        except ImageLoadError as exc:  # changed since the scan
            raise PetalError(f"a photo changed while petal read it: {exc}") from exc
        self.probabilities = probabilities
        self.shift = self._shift()
        self.margins = margins(probabilities)
        self.order = self._order(features)
        self.lock = threading.Lock()

    def _shift(self) -> ShiftCheck | None:
        """Whether the new photos are less like the training photos than the held-out ones
        (logged: a warning when they are); None for a model that calls nothing unknown."""
        score, unavailable = self.classifier.novelty, self.classifier.shift_unavailable
        if score is None or self.novelty is None or unavailable:
            if unavailable and len(self.images) >= MIN_PHOTOS:
                log.info(f"Whether these photos differ from the training photos is not "
                         f"checked: {unavailable}")
            return None
        check = check_shift(self.novelty, score.val_scores, score.threshold)
        if check.enough:
            said = check.message()
            log.log(logging.WARNING if check.shifted else logging.INFO,
                    said[0].upper() + said[1:])
        return check

    def source(self, i: int) -> Path:
        """Photo i's path under the resolved folder: the same row however the folder is
        reached (a link to it, a relative path)."""
        return self.new.photos / self.images[i].path

    def _order(self, features: np.ndarray) -> list[int]:
        """Undecided photos in queue order, then those the model calls unknown (most unlike
        its training photos first: likely of none of its classes, they would spend a batch
        meant for its hesitations), then those decided in an earlier session (they count as
        labelled, like the model's training photos)."""
        done = [i for i in range(len(self.images)) if str(self.source(i)) in self.new.rows]
        todo = [i for i in range(len(self.images)) if str(self.source(i)) not in self.new.rows]
        score = self.classifier.novelty
        known = (score.reference if score is not None
                 else np.zeros((0, features.shape[1]), np.float32))
        known = np.concatenate([known, features[done]]) if done else known
        ranked = queue_with_unknown_last(
            self.probabilities[todo], features[todo], known,
            None if self.novelty is None else self.novelty[todo],
            score.threshold if score is not None else np.inf)
        return [todo[i] for i in ranked] + done

    def _unknown(self, i: int) -> bool:
        """Whether the model calls photo i unknown."""
        return (self.novelty is not None and self.classifier.novelty is not None
                and bool(self.novelty[i] > self.classifier.novelty.threshold))

    def page(self) -> dict:
        rejected = (f" {len(self.rejected)} file(s) could not be read and are left out."
                    if self.rejected else "")
        differ = (f" Note: {self.shift.message()}." if self.shift is not None
                  and self.shift.shifted else "")
        held = (f"{self.new.folder} holds the new labels and the photos linked from your "
                f"folder {self.new.linked_from!r}" if self.new.linked_from else
                f"{self.new.folder} holds the new labels alone (make it with --data DIR to "
                "add the photos the model was trained on)")
        return {
            "title": f"petal label {self.photos}",
            "summary": f"{len(self.images)} photos in the order petal's queue gives them: the "
                       f"ones the model ({self.model}) is unsure of, spread over what its "
                       f"training photos do not cover; then the ones it calls unknown, likely "
                       f"of none of its classes (Enter files each as none of these)."
                       f"{rejected}{differ}",
            "next_step": {"text": f"Every decision is saved at once. {held}, and the photos "
                                  f"of none of these in {NONE_FOLDER}/, with which the next "
                                  f"training checks when to answer unknown; retrain on it:",
                          "command": f"petal train --data {quote(str(self.new.folder))}"},
            "classes": self.classes,
            "class_action": "label", "class_prompt": "Label as:", "class_done": "labelled",
            "actions": [{"action": "none", "key": "0", "text": "None of these",
                         "done": "none of these"}],
            "filters": [["undecided", "To label"], ["all", "All, in queue order"],
                        ["unknown", "Called unknown"], ["label", "Labelled"],
                        ["none", "None of these"]],
        }

    def items(self) -> list[dict]:
        with self.lock:
            self.new.rows = self.new.read()  # as the file says now (edited by hand, say)
        return [self._item(i, place) for place, i in enumerate(self.order)]

    def _item(self, i: int, place: int) -> dict:
        p = self.probabilities[i]
        ranked = np.argsort(-p, kind="stable")[:3]
        guess = ", then ".join(f"{self.classes[c]} {100 * p[c]:.0f} %" for c in ranked)
        lines = [f"petal's guess: {guess}",
                 f"Queue place {place + 1}: margin {self.margins[i]:.2f} between its two "
                 "likeliest classes"]
        unknown = self._unknown(i)
        if unknown:  # offered as none of these: a guess among the classes would file it
            lines.append("It looks like none of the classes the model knows: Enter files it "
                         "as none of these.")
        row = self.new.rows.get(str(self.source(i)))
        action = row["decision"] if row else ""
        return {"key": str(i), "name": shown(self.images[i].path), "lines": lines,
                "suggested": "" if unknown else self.classes[ranked[0]],
                "suggested_action": "none" if unknown else "", "action": action,
                "label": row["label"] if row else "",
                "tags": [action] * bool(action) + ["unknown"] * unknown}

    def _index(self, key: str) -> int:
        if not (key.isascii() and key.isdigit()) or int(key) >= len(self.images):
            raise PetalError(f"no photo {key!r} in this queue")
        return int(key)

    def photo(self, key: str) -> Path:
        return self.source(self._index(key))

    def decide(self, decision: Decision) -> dict:
        i = self._index(decision.key)
        with self.lock:
            self.new.decide(self.source(i), self.images[i].sha256, decision.action,
                            decision.label)
        return self._item(i, self.order.index(i))
