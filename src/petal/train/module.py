"""The LightningModule: loss, metrics, optimiser and LR schedule, all read from the Recipe."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from petal.models.spec import InputSpec
from petal.preprocess import scale_and_shift
from petal.train.recipes import Recipe


class ClassifierModule(L.LightningModule):
    """Wraps a network that maps normalised images to class logits; batches arrive as uint8."""

    def __init__(self, model: nn.Module, recipe: Recipe, spec: InputSpec, num_classes: int) -> None:
        super().__init__()
        self.model, self.recipe, self.spec = model, recipe, spec
        self.lr = recipe.lr  # Lightning's LR finder reads and writes this attribute
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        scale, shift = (torch.from_numpy(a) for a in scale_and_shift(spec))
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) images -> logits; normalised exactly as petal.preprocess does."""
        return self.model(images.float() * self.scale + self.shift)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, labels = batch
        loss = self.criterion(self(images), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, labels = batch
        logits = self(images)
        if self.recipe.tta_flip:
            logits = (logits.softmax(1) + self(images.flip(3)).softmax(1)).log()
        self.val_acc(logits, labels)
        self.log("val_loss", nn.functional.cross_entropy(logits, labels), on_epoch=True,
                 prog_bar=True, batch_size=len(labels), sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True, batch_size=len(labels))

    def configure_optimizers(self):
        return build_optimizer(self.model.parameters(), self.recipe, self.lr,
                               self.trainer.estimated_stepping_batches)


def build_optimizer(params, recipe: Recipe, lr: float, total_steps: int) -> dict:
    """Optimiser + LR scheduler from the recipe, in Lightning's configure_optimizers form."""
    params = [p for p in params if p.requires_grad]
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=lr, momentum=recipe.momentum,
                                    weight_decay=recipe.weight_decay, nesterov=True)
    else:
        kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
        optimizer = kind(params, lr=lr, weight_decay=recipe.weight_decay)
    if recipe.schedule == "constant":
        return {"optimizer": optimizer}
    if recipe.schedule == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.step_epochs),
                                                         gamma=recipe.step_gamma)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=int(total_steps), pct_start=recipe.warmup_fraction)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(total_steps))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
