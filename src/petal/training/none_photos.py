"""The end of training's use of DATA/_none/: photos a person filed as none of the classes
(`petal label` keeps them there; anyone may add their own). The saved model scores them as
inference will, and petal.inference.none_threshold checks the unknown threshold with them and,
where they are enough, sets it; model.json's `novelty` records both (`none_photos`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import numpy as np

from petal.data.image import ImageLoadError
from petal.data.scan import NONE_FOLDER, none_photos
from petal.errors import PetalWarning
from petal.fsutil import atomic_write_json
from petal.inference.classifier import Classifier, load
from petal.inference.model_folder import ModelCard
from petal.inference.none_threshold import MIN_TO_SET, NoneCheck, Shares, check_none
from petal.run_folder import CARD_FILE

log = logging.getLogger(__name__)

CHUNK = 64  # photos decoded and scored at once: bounds the memory
MAX_PHOTOS = 5_000  # none photos scored at most (the first, sorted): bounds the time


def _percent(count: int, n: int) -> str:
    return f"{count} of {n} ({100 * count / n:.0f} %)"


def _scores(classifier: Classifier, photos: list[Path]) -> np.ndarray:
    """The novelty of each readable photo; the others are warned about and left out."""
    scores, skipped = [], []
    for start in range(0, len(photos), CHUNK):
        arrays = []
        for photo in photos[start:start + CHUNK]:
            try:
                arrays.append(classifier.prepare(photo))
            except ImageLoadError as exc:
                skipped.append(f"{photo.name} ({exc.reason})")
        if arrays:
            scores.append(classifier.answer(np.stack(arrays)).novelty)
    if skipped:
        warnings.warn(f"{len(skipped)} photo(s) in {NONE_FOLDER}/ cannot be read and were left "
                      f"out: {', '.join(skipped[:3])}" + (" ..." if len(skipped) > 3 else ""),
                      PetalWarning, stacklevel=3)
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def _say(check: NoneCheck, folder: Path) -> None:
    shares = check.at_keep
    log.info(f"Photos of none of the classes ({folder}): the unknown threshold, set to keep "
             f"{100 * check.keep:.0f} % of the photos of the classes, rejects "
             f"{_percent(shares.none_rejected, shares.n_none)}")
    if check.chosen_keep is None:
        log.info(f"With {MIN_TO_SET} or more of them, petal would also set the threshold "
                 "from them")
        return

    def judged(s: Shares) -> str:
        return (f"keeps {_percent(s.known_kept, s.n_known)} of the photos of the classes and "
                f"rejects {_percent(s.none_rejected, s.n_none)} of these")

    chosen, card = check.chosen_cross_fitted, check.keep_cross_fitted
    verdict = ("adopted" if check.adopted else "not adopted: it did no better than keeping "
               f"{100 * check.keep:.0f} %")
    log.info(f"A threshold set from them {judged(chosen)}; keeping {100 * check.keep:.0f} % "
             f"{judged(card)} (each judged on photos that did not set it, in 5 folds): "
             f"{verdict}")


def use_none_photos(data: Path, model_dir: Path, card: ModelCard) -> ModelCard:
    """Check (and, with enough of them, set) the unknown threshold of the model saved in
    `model_dir` with `data`/_none/'s photos; the card, updated on disk when changed."""
    photos = none_photos(data)
    if not photos or card.novelty is None:
        return card
    folder = data / NONE_FOLDER
    if card.novelty_from_other_models:
        log.info(f"The {len(photos)} photo(s) in {folder} are not used: this model's unknown "
                 "threshold comes from its cross-validation's networks, which see photos "
                 "otherwise than it does")
        return card
    if len(photos) > MAX_PHOTOS:
        log.info(f"{folder} holds {len(photos)} files: the first {MAX_PHOTOS} are used")
        photos = photos[:MAX_PHOTOS]
    classifier = load(model_dir, engine="torch")
    scores = _scores(classifier, photos)
    if not len(scores):
        return card
    score = classifier.novelty
    check = check_none(score.val_scores, scores, score.keep)
    _say(check, folder)
    settings = {**score.keeping(check.final_keep).settings(), "none_photos": check.to_json()}
    card = dataclasses.replace(card, novelty=settings)
    atomic_write_json(model_dir / CARD_FILE, card.to_json())
    return card
