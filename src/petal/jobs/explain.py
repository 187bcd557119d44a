"""`petal explain`: where a model looked in a photo, for its top class or a class asked for."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from petal.data.image import ImageLoadError
from petal.errors import PetalError, PetalWarning
from petal.inference.classifier import Classifier, Prediction
from petal.inference.explain import class_index, heat_maps, overlay
from petal.paths import refuse_inside_model_data
from petal.report.figures import Ranking, explanation_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Explanation:
    """One photo explained (`petal.explain`): the model's answer, the class whose map is
    drawn, and the photo as the model saw it with that map over it."""

    image: Path
    prediction: Prediction
    explained: str
    photo: np.ndarray  # (size, size, 3) uint8, as the model sees it
    overlaid: np.ndarray  # the same with the heat map over it
    path: Path | None = None  # where the figure was written

    def figure(self) -> Figure:
        ranking = Ranking("top 3", self.prediction.labels, self.prediction.probabilities,
                          self.prediction.unknown)
        return explanation_figure(self.photo, self.overlaid, ranking, self.explained)

    plot = figure

    def summary(self) -> str:
        top = ", ".join(f"{label} {p:.1%}" for label, p
                        in zip(self.prediction.labels, self.prediction.probabilities))
        unknown = "unknown; among its classes: " if self.prediction.unknown else ""
        return f"{self.image}: {unknown}{top}; where it looked for {self.explained}"

    def _repr_html_(self) -> str:
        from petal.display import paragraph
        from petal.report.notebook import figure_html

        return paragraph(self.summary()) + figure_html(self.figure())


def explain(classifier: Classifier, image: str | os.PathLike, label: str | None = None,
            figure: str | os.PathLike | None = None) -> Explanation:
    """Where `classifier` looked in the photo at `image` for its top class (or `label`); the
    figure written to the file `figure` when given. ImageLoadError for a photo that cannot
    be read."""
    target = class_index(classifier, label)  # an unknown class before any photo is read
    if figure is not None:
        refuse_inside_model_data(figure, classifier.card.data)
    photo = classifier.prepare(image)
    explanation = heat_maps(classifier, photo[None], target)
    prediction = classifier.top_k(explanation.answer, [str(image)], 3)[0]
    explained = classifier.classes[int(explanation.explained[0])]
    result = Explanation(Path(image), prediction, explained, photo,
                         overlay(photo, explanation.heat[0]))
    if figure is not None:
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        result.path = save_figure(result.figure(), Path(figure))
    return result


def explain_all(classifier: Classifier, images: Sequence[str | os.PathLike],
                label: str | None = None, out: str | os.PathLike | None = None
                ) -> list[Explanation]:
    """explain for each of `images`, each figure OUT/NAME.png (figure_names) when `out` is
    given; a photo that cannot be read is skipped and said in a PetalWarning; PetalError
    when none can be."""
    figures = figure_names(images, Path(out)) if out is not None else [None] * len(images)
    done = []
    for image, figure in zip(images, figures):
        try:
            done.append(explain(classifier, image, label, figure))
        except ImageLoadError as exc:
            warnings.warn(f"skipped {image}: {exc.message}", PetalWarning, stacklevel=2)
    if not done:
        raise PetalError(f"no image could be explained: all {len(images)} were skipped")
    return done


def figure_names(images: list[str], out: Path) -> list[Path]:
    """OUT/NAME.png for each image, NAME its file name without the extension; a name taken
    by an earlier image gets -2, -3, ... so that no figure of one command replaces another
    (img/daisy.jpg, img2/daisy.jpg, img/daisy.png: daisy, daisy-2, daisy-3)."""
    taken: set[str] = set()
    names = []
    for image in images:
        stem = Path(image).stem
        name, n = stem, 1
        while name.lower() in taken:  # a file system may not tell Daisy from daisy
            n += 1
            name = f"{stem}-{n}"
        taken.add(name.lower())
        names.append(out / f"{name}.png")
    return names


