"""The one place a Lightning Trainer is made (a run's training, a fold's, the LR range test),
and run so that Ctrl-C leaves Python as it found it.

Lightning answers a KeyboardInterrupt during fit by ignoring SIGINT from then on and calling
sys.exit(1): a notebook's kernel would stop answering its interrupt button, and a program
would exit. `interruptible` restores the SIGINT handler and raises KeyboardInterrupt
instead; the run folder keeps its last checkpoint, so `--resume` / `resume=` continues it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from petal.errors import PetalError
from petal.training.checkpoints import SafeCheckpointIO
from petal.training.precision import training_precision

if TYPE_CHECKING:
    from petal.training.fit import TrainRequest


def quiet_lightning() -> None:
    """Lightning's own lines and the warnings that say nothing to a petal user, off."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # --resume
    warnings.filterwarnings("ignore", message=".*dirpath has changed from.*")  # a moved run
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")  # Lightning vs torch 2.14
    # a final model, and a fold, train without validating (their figures come after)
    warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")


def precision_of(request: TrainRequest) -> str:
    """The Lightning precision the request trains at (its "auto" resolved here)."""
    return training_precision(request.trainer.precision, request.trainer.accelerator,
                              images_in=request.recipe.mode == "full")


PURPOSES = ("run", "fold", "range test")


def make_trainer(request: TrainRequest, purpose: str, *, progress: bool,
                 callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """A Trainer for `request`. "run", the run's own training: on the request's devices,
    nodes and strategy, checkpoints (among `callbacks`) written safely. "fold", a
    cross-validation fold: one device, nothing written. "range test", the LR finder's: one
    device, nothing written, and no gradient clipping (Lightning's tuner sets its steps)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r}: one of {PURPOSES}")
    whole_run, recipe, options = purpose == "run", request.recipe, request.trainer
    devices = options.devices if whole_run else 1
    quiet_lightning()
    return L.Trainer(
        accelerator=options.accelerator,
        devices=int(devices) if str(devices).isdigit() else devices,
        num_nodes=options.num_nodes if whole_run else 1,
        strategy=options.strategy if whole_run else "auto",
        precision=precision_of(request),
        max_epochs=None if purpose == "range test" else recipe.epochs,
        gradient_clip_val=None if purpose == "range test" else recipe.grad_clip_value,
        gradient_clip_algorithm="value",
        callbacks=[*callbacks, *([TQDMProgressBar()] if progress and whole_run else [])],
        plugins=[SafeCheckpointIO()] if whole_run else None,
        enable_checkpointing=whole_run,
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        default_root_dir=str(request.out),
    )


def check_trainer_options(request: TrainRequest) -> None:
    """PetalError, before anything is written, for an accelerator, devices, number of nodes or
    strategy Lightning cannot use here (it says why only when asked to train)."""
    options = request.trainer
    try:
        make_trainer(request, "run", progress=False)
    except Exception as exc:  # Lightning raises several types; each means "not here"
        said = " ".join(str(exc).split())[:300]
        raise PetalError(f"--accelerator {options.accelerator}, --devices {options.devices}, "
                         f"--num-nodes {options.num_nodes}, --strategy {options.strategy}: "
                         f"{said}") from exc


@contextlib.contextmanager
def interruptible(trainer: L.Trainer) -> Iterator[None]:
    """Run a fit (or the range test) inside: Ctrl-C raises KeyboardInterrupt, with SIGINT's
    handler as it was (module docstring)."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SIGTERMException:
        raise  # SIGTERM: the CLI says so and exits 143
    except SystemExit as exc:
        if trainer.interrupted:  # Lightning's answer to Ctrl-C
            raise KeyboardInterrupt("training interrupted") from exc
        raise
    finally:
        if main and handler is not None and signal.getsignal(signal.SIGINT) != handler:
            signal.signal(signal.SIGINT, handler)
