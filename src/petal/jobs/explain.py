"""`petal explain`: where a model looked in a photo, for its top class or a class asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
        return (f"{self.image}: {'unknown, closest ' if self.prediction.unknown else ''}{top}; "
                f"where it looked for {self.explained}")

    def _repr_html_(self) -> str:
        from petal.report.notebook import figure_html, paragraph

        return paragraph(self.summary()) + figure_html(self.figure())


def explain(classifier: Classifier, image: str | os.PathLike, label: str | None = None,
            out: str | os.PathLike | None = None) -> Explanation:
    """Where `classifier` looked in the photo at `image` for its top class (or `label`); the
    figure written to `out` when given. ImageLoadError for a photo that cannot be read."""
    target = class_index(classifier, label)  # an unknown class before any photo is read
    if out is not None:
        refuse_inside_model_data(out, classifier.card.data)
    photo = classifier.prepare(image)
    explanation = heat_maps(classifier, photo[None], target)
    prediction = classifier.top_k(explanation.answer, [str(image)], 3)[0]
    explained = classifier.classes[int(explanation.explained[0])]
    result = Explanation(Path(image), prediction, explained, photo,
                         overlay(photo, explanation.heat[0]))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        result.path = save_figure(result.figure(), Path(out))
    return result
