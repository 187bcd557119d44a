"""The engine `petal.load` uses when not told: ONNX Runtime on the model folder's own ONNX
export, made on first use and kept beside the weights (the files `petal export` writes),
else torch.

ONNX Runtime answers about four times the images a second of torch at a quarter of its
memory (docs/RESULTS.md: inference throughput, serving), from the same graph for the
class activation maps and the novelty score's features. An export is current when its card
records the digest of the folder's weights and card: a model saved again, or a folder
edited by hand, is exported again. torch stays the engine, with a warning that says why,
for a network whose explanations need Grad-CAM (torch alone has it) and when the export
cannot be made or kept (the exporter fails, the folder cannot be written), and on a GPU
that the installed ONNX Runtime cannot drive (it has no CUDA provider).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

from petal.errors import PetalWarning
from petal.fsutil import file_sha256, read_json
from petal.inference.device import CPU, onnx_has_cuda
from petal.inference.model_folder import model_digest, read_card
from petal.inference.onnx_engine import (
    FILE_DIGEST,
    NOVELTY_DIGEST,
    ONNX_FILE,
    novelty_path,
    sidecar_path,
)
from petal.log import SIDE_NOTE
from petal.run_folder import CARD_FILE

log = logging.getLogger(__name__)


def export_section(folder: Path) -> dict | None:
    """The export section of the folder's model.onnx card when that export is current and
    whole: a float32 ONNX export whose card records the digest of the folder's weights and
    card and of the graph and novelty files beside it as they are now. A part missing, cut
    short, swapped in from another run or left from an interrupted export means None: export
    again. Whether a novelty file belongs beside it is model.json's to say (its digest is
    recorded), not the card beside the export's."""
    exported = folder / ONNX_FILE
    try:
        section = read_json(sidecar_path(exported))["export"]
        current = (section.get("format") == "onnx" and "quantized" not in section
                   and section.get("source") == model_digest(folder)
                   and section.get(FILE_DIGEST) == file_sha256(exported)
                   and (read_json(folder / CARD_FILE).get("novelty") is None
                        or section.get(NOVELTY_DIGEST) == file_sha256(novelty_path(exported))))
        return section if current else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def warn_if_stale(exported: Path) -> None:
    """A PetalWarning when the exported file sits in a model folder whose weights or card
    changed since it was exported (its card records the digest it was made from)."""
    folder = exported.parent
    try:
        source = read_json(sidecar_path(exported))["export"].get("source")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    if source is not None and (folder / CARD_FILE).is_file() and source != model_digest(folder):
        warnings.warn(f"{exported} was exported from an earlier state of the model in "
                      f"{folder}: it answers as that model did; export it again", PetalWarning,
                      stacklevel=3)


def _announce(folder: Path) -> None:
    log.info(f"Exporting {folder} to ONNX, once: petal runs it on ONNX Runtime (faster, less "
             "memory than the torch engine)", extra=SIDE_NOTE)


def _export(folder: Path) -> str | None:
    """Export the folder's model to ONNX beside its weights; None when done, else why not.

    The exporter needs torch, about 1 GB resident that a process serving on ONNX Runtime
    would then keep for good: a process that has not imported torch exports in a child
    process (measured: `petal serve` held 1.0 GB after exporting in-process, 0.3 GB
    otherwise). One that has (training, evaluation) exports in-process. Either way a model
    petal cannot use is an error before any "Exporting" line: its card is checked first (and
    in-process, its weights loaded).
    """
    if "torch" not in sys.modules:
        read_card(folder)  # PetalError for a card petal cannot use
        _announce(folder)
        # -P: `-c` would put the current folder first on sys.path, so a petal/ package
        # there would be imported (and run) instead of the installed one
        command = [sys.executable, "-P", "-c", "import sys; from petal.cli import main; "
                   "sys.exit(main(sys.argv[1:]))", "export", str(folder)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            return None
        said = done.stderr.strip().splitlines()
        return said[-1].removeprefix("error: ") if said else f"exit status {done.returncode}"
    from petal.inference.export import ExportFailed, export

    try:
        export(folder, "onnx", announce=lambda: _announce(folder))
    except (ExportFailed, OSError) as exc:
        return str(exc)
    return None


def chosen_engine(folder: Path, device: str = CPU) -> tuple[str, Path]:
    """("onnx", the export) or ("torch", the model folder) for model folder `folder`, to run
    on `device` ("cpu" or "cuda:N"): torch on a GPU that ONNX Runtime cannot drive."""
    if device != CPU and not onnx_has_cuda():
        return "torch", folder
    section = export_section(folder)
    if section is None:
        failure = _export(folder)
        if failure is not None:
            warnings.warn(f"{folder}: running on torch, as its ONNX export could not be made "
                          f"({failure}); `petal export` tries again", PetalWarning, stacklevel=3)
            return "torch", folder
        section = export_section(folder)
    if section is None or "class_maps" not in section:
        return "torch", folder  # explained by Grad-CAM, which needs torch
    return "onnx", folder / ONNX_FILE
