"""How petal's result objects show themselves in Jupyter (`_repr_html_`): short HTML
fragments, figures inlined as PNG, so that a notebook saved with its outputs shows them
wherever it is read (no file beside it, no running kernel)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

def figure_html(fig: Figure, width: int | None = None) -> str:
    """The figure as an inline PNG."""
    from petal.report.figures import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    size = f' style="max-width: {width}px"' if width else ' style="max-width: 100%"'
    return f'<img src="data:image/png;base64,{data}"{size}>'


def figures_html(figures: Sequence[Figure], width: int = 420) -> str:
    return "<div>" + "".join(figure_html(fig, width) for fig in figures) + "</div>"


def thumbnails_html(paths: Sequence[Path], captions: Sequence[str], side: int = 128) -> str:
    """Small inline JPEGs of the photos at `paths`, each with its caption; a photo that
    cannot be read is left out."""
    from petal.data.image import ImageLoadError
    from petal.report.figures import thumbnail

    cells = []
    for path, caption in zip(paths, captions):
        try:
            image = thumbnail(path, side=side)
        except ImageLoadError:
            continue
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        cells.append(f'<figure style="display:inline-block;margin:4px">'
                     f'<img src="data:image/jpeg;base64,{data}"><figcaption>'
                     f"{escape(caption)}</figcaption></figure>")
    return "<div>" + "".join(cells) + "</div>"


class Figures(dict):
    """Figures by file name (what `.plot()` gives), drawn side by side in Jupyter."""

    def _repr_html_(self) -> str:
        return figures_html(list(self.values()))
