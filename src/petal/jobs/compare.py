"""`petal compare`: one photo, several models' answers side by side (the write-up's ResNet9
against ResNet34)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from petal.data.image import ImageLoadError
from petal.errors import PetalError
from petal.fsutil import check_writable_file
from petal.inference.classifier import Classifier, load
from petal.paths import refuse_inside_model_data
from petal.report.figures import Ranking, comparison_figure, save_figure, thumbnail
from petal.run_folder import find_model_folder, run_of_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL import Image

log = logging.getLogger(__name__)


@dataclass
class Comparison:
    """Each model's top answers for one photo (`petal.compare`)."""

    image: Path
    rankings: list[Ranking]  # a model each: title, labels, probabilities, unknown
    picture: Image.Image  # the photo as the figure shows it
    truth: str | None = None  # the photo's class, when known: its bars are green
    path: Path | None = None  # where the figure was written

    def figure(self) -> Figure:
        return comparison_figure(self.picture, self.rankings, self.truth)

    plot = figure

    def summary(self) -> str:
        return "\n".join(f"{r.title}: " + ("unknown; among its classes: " if r.unknown else "")
                         + ", ".join(f"{label} {p:.1%}"
                                     for label, p in zip(r.labels, r.probabilities))
                         for r in self.rankings)

    def _repr_html_(self) -> str:
        from petal.display import paragraph
        from petal.report.notebook import figure_html

        return "".join(paragraph(line) for line in self.summary().splitlines()) + figure_html(
            self.figure())


def model_title(model: str | os.PathLike, classifier: Classifier) -> str:
    """The run (or model folder, or file) name and the architecture, for a figure title."""
    path = Path(model).resolve()
    name = path.stem if path.is_file() else run_of_model(find_model_folder(path)).name
    return f"{name} ({classifier.card.architecture.get('name', '?')})"


def compare(image: str | os.PathLike, models: Sequence[str | os.PathLike | Classifier], *,
            top_k: int = 3, out: str | os.PathLike | None = None, engine: str | None = None,
            device: str = "auto", keep_known: float | None = None, reject: bool = True,
            truth: str | None = None) -> Comparison:
    """Each of `models` (a path, or a Classifier set as wanted) on the photo at `image`;
    the figure written to `out` when given (checked before any model is loaded).
    `keep_known`: the share of validation photos a model's unknown threshold keeps (None:
    the model's own); `reject=False`: never call the photo unknown. `truth`: the photo's
    class, drawn green where a model names it."""
    if not reject and keep_known is not None:
        raise PetalError("keep_known and reject=False (--keep-known and --no-reject) "
                         "contradict each other: give one")
    if out is not None:
        check_writable_file(out)
    try:
        picture = thumbnail(image, side=384)
    except ImageLoadError as exc:
        raise PetalError(f"cannot use {image}: {exc.message}") from exc
    rankings = []
    for model in models:
        classifier = model if isinstance(model, Classifier) else load(model, engine,
                                                                      device=device)
        if not reject or keep_known is not None:
            classifier = classifier.keeping(keep_known if reject else None)
        if out is not None:
            refuse_inside_model_data(out, classifier.card.data)
        answer = classifier.predict(image, top_k=top_k)
        title = (model_title(model, classifier) if not isinstance(model, Classifier)
                 else classifier.card.architecture.get("name", "?"))
        rankings.append(Ranking(title, answer.labels, answer.probabilities, answer.unknown))
    comparison = Comparison(Path(image), rankings, picture, truth)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        comparison.path = save_figure(comparison.figure(), Path(out))
    return comparison
