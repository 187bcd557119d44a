"""The LightningModule: loss, metrics, optimiser and LR schedule, all read from the Recipe."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from petal.inference.preprocess import scale_and_shift
from petal.models.features import classifier_head
from petal.models.spec import InputSpec
from petal.training.recipes import Recipe

# onecycle: the share of steps spent raising the LR (every recipe used 0.25 when it was a
# field; docs/TUNING.md)
WARMUP_FRACTION = 0.25

class ClassifierModule(L.LightningModule):
    """Trains `network` (logits from its input) with the recipe's loss, optimiser and schedule.

    With an input `spec`, batches are uint8 images, normalised here exactly as
    petal.inference.preprocess does, and the network runs channels-last (measured on this
    2-core CPU: 2x faster training for EfficientNet-Lite0, 10 % for ResNet9); without a spec
    (cached mode) batches are stored trunk features.
    A validation batch of shape (N, V, ...) holds V views of each input, averaged.
    """

    def __init__(self, network: nn.Module, recipe: Recipe, num_classes: int,
                 spec: InputSpec | None = None) -> None:
        super().__init__()
        self.network, self.recipe = network, recipe
        self.lr = recipe.lr  # Lightning's LR finder reads and writes this attribute
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.step_losses: list[float] | None = None  # a list: every step's raw loss goes in
        self.normalise = spec is not None
        if spec is not None:
            scale, shift = (torch.from_numpy(a) for a in scale_and_shift(spec))
            self.register_buffer("scale", scale, persistent=False)
            self.register_buffer("shift", shift, persistent=False)
            self.network.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        """With the recipe's `freeze_bn`, batch norm layers stay in eval mode and keep their
        (pretrained) running statistics. Checked every batch: Lightning puts each submodule
        back in its saved mode after validation, bypassing any `train()` override."""
        if self.recipe.freeze_bn:
            for layer in self.network.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalised(inputs))

    def normalised(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the network's normalised float input (features pass unchanged)."""
        if not self.normalise:
            return inputs
        inputs = inputs.float() * self.scale + self.shift
        return inputs.contiguous(memory_format=torch.channels_last)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                      batch_idx: int) -> torch.Tensor:
        inputs, labels = batch
        loss = self.criterion(self(inputs), labels)
        if self.step_losses is not None:  # the LR range test reads them (petal.training.lr_range)
            self.step_losses.append(float(loss.detach()))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        inputs, labels = batch
        if self.normalise:
            views = [inputs, inputs.flip(3)] if self.recipe.tta_flip else [inputs]
        else:
            # (N, views, ...) stored features of one trunk; several trunks' come as a list
            stacked = isinstance(inputs, torch.Tensor) and inputs.dim() == 5
            views = list(inputs.unbind(1)) if stacked else [inputs]
        # .float(): under bf16 mixed precision the logits come in bfloat16
        probabilities = torch.stack([self(v).float().softmax(1) for v in views]).mean(0)
        log_probabilities = probabilities.clamp_min(1e-12).log()
        self.val_acc(probabilities, labels)
        self.log("val_loss", nn.functional.nll_loss(log_probabilities, labels), on_epoch=True,
                 prog_bar=True, batch_size=len(labels), sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True, batch_size=len(labels))

    def configure_optimizers(self):
        groups = parameter_groups(self.network, self.lr, self.recipe.trunk_lr_scale)
        return build_optimizer(groups, self.recipe, self.trainer.estimated_stepping_batches)


def parameter_groups(network: nn.Module, lr: float, trunk_lr_scale: float) -> list[dict]:
    """Trainable parameters: the head at `lr` first (history.csv logs the first group's LR),
    then everything below it at `lr * trunk_lr_scale` (discriminative learning rates)."""
    head = {id(p) for p in classifier_head(network).parameters()}
    trainable = [p for p in network.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in head], "lr": lr},
              {"params": [p for p in trainable if id(p) not in head], "lr": lr * trunk_lr_scale}]
    return [group for group in groups if group["params"]]


def build_optimizer(groups: list[dict], recipe: Recipe, total_steps: int) -> dict:
    """Optimiser + LR scheduler from the recipe, in Lightning's configure_optimizers form."""
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = kind(groups, lr=groups[0]["lr"], betas=(0.9, 0.999),
                     weight_decay=recipe.weight_decay)
    if total_steps < 6:  # too few steps for a schedule: a constant LR
        return {"optimizer": optimizer}
    if recipe.schedule == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.step_epochs),
                                                         gamma=recipe.step_gamma)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    # OneCycleLR divides by the length of its warm-up phase: keep it at >= 2 steps.
    warmup = min(max(WARMUP_FRACTION, 3 / total_steps), 0.5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups], total_steps=int(total_steps),
        pct_start=warmup)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
