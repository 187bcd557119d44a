"""Per-epoch history: a table printed as training goes, history.csv and per-step LRs on disk
(their format: petal.run_folder)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from petal.fsutil import atomic_write_text
from petal.run_folder import HISTORY_FILE, LR_STEPS_FILE, read_history, write_history

log = logging.getLogger(__name__)


class HistoryWriter(L.Callback):
    """Appends one row per epoch to history.csv (rank 0 only) and prints it, as the original
    write-up did.

    `started` is when this model's work began, so elapsed_seconds includes data preparation.
    On resume, rows after the checkpoint's epoch (and LR steps after its step) are dropped
    before new ones are added. Both files are rewritten whole, atomically, at each epoch's
    end: the steps of an epoch cut short are not kept, as its checkpoint is not either.
    """

    def __init__(self, run_dir: Path, started: float, resume_at: tuple[int, int] | None = None,
                 validated: bool = True) -> None:
        self.history_path = run_dir / HISTORY_FILE
        self.lr_path = run_dir / LR_STEPS_FILE
        self.started = started
        self.resume_at = resume_at  # (completed epochs, global step) of the checkpoint
        self.rows: list[dict[str, float]] = []
        self.lr_lines = ["step,lr\n"]
        self.epoch_started = time.perf_counter()
        self.validated = validated  # False: a final model, no validation (val columns NaN)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.resume_at:
            epochs, step = self.resume_at
            self.rows = [r for r in read_history(self.history_path) if r["epoch"] <= epochs]
            with open(self.lr_path) as handle:
                self.lr_lines += [line for line in list(handle)[1:]
                                  if int(line.split(",")[0]) < step]
        self._write()
        log.info(f"{'epoch':>5}  {'train_loss':>10}  {'val_loss':>9}  {'val_acc':>8}  "
                      f"{'lr':>9}  {'seconds':>7}")

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.epoch_started = time.perf_counter()

    def _write(self) -> None:
        write_history(self.history_path, self.rows)
        atomic_write_text(self.lr_path, "".join(self.lr_lines))

    @rank_zero_only
    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *_) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.lr_lines.append(f"{trainer.global_step},{lr:.6g}\n")

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.validated and "val_acc" not in metrics:
            return
        now = time.perf_counter()
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": float(metrics["train_loss"]),
            "val_loss": float(metrics.get("val_loss", math.nan)),
            "val_acc": float(metrics.get("val_acc", math.nan)),
            # the LR of the epoch's last step: read after it, the schedule has stepped once
            # more (past its end after the last epoch, where one-cycle rises again)
            "lr": float(self.lr_lines[-1].split(",")[1]),
            "epoch_seconds": now - self.epoch_started,
            "elapsed_seconds": now - self.started,
        }
        self.rows.append(row)
        self._write()
        validation = (f"{row['val_loss']:>9.4f}  {100 * row['val_acc']:>6.1f} %"
                      if self.validated else f"{'-':>9}  {'-':>8}")
        log.info(f"{row['epoch']:>5}  {row['train_loss']:>10.4f}  {validation}  "
                      f"{row['lr']:>9.2e}  {row['epoch_seconds']:>7.1f}")
