"""Every training hyperparameter, in one place: named recipes, each a `Recipe`.

Any field can be overridden from the command line: `petal train --set epochs=3 --set lr=0.01`.
`petal recipes` prints them all. Fields that lost their trials were removed; their evidence
is in docs/TUNING.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from petal.errors import PetalError
from petal.version import __version__


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    model: str  # default model for this recipe (`--model` overrides)
    # "full": the whole network trains on decoded images; "cached": a frozen trunk runs once
    # and only the layers from `train_from` up train, on its stored outputs
    # (train/feature_cache.py).
    mode: str = "full"
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3  # the peak LR for onecycle, the starting LR for step
    trunk_lr_scale: float = 1.0  # layers below the classifier head train at lr * this
    weight_decay: float = 0.0
    schedule: str = "onecycle"  # onecycle | step
    step_epochs: tuple[int, ...] = ()  # step: multiply the LR by step_gamma at these epochs
    step_gamma: float = 0.1
    # clip each gradient element to +-grad_clip_value (as the original write-up did)
    grad_clip_value: float | None = None
    label_smoothing: float = 0.0
    freeze_bn: bool = False  # batch norm keeps its running statistics (pretrained ones)
    input_size: int | None = None  # None: the model's own input size
    flip: bool = True  # random horizontal flips (of images; in cached mode, of feature maps)
    # validation and the saved model average each image with its mirror (so inference costs
    # twice the network's time: worth it only where it measurably helps, docs/TUNING.md)
    tta_flip: bool = False
    # full mode: what validation and the saved model see of each stored resize_size square:
    # "center", the central input_size crop (as ImageNet models are evaluated), or "full",
    # the whole square: the training crops' scale plus the margins a crop cuts off
    eval_crop: str = "center"
    width: float | None = None  # resnet9 channel multiplier (None: the original widths)
    # cached mode only (see train/feature_cache.py)
    # the first layer that trains, e.g. blocks.6 (`petal recipes`); a network or trunk without
    # it (a ConvNeXt's, a ViT's) trains from its classifier on its pooled features
    train_from: str = "classifier"
    seed: int = 0


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="original-resnet9",
            summary="The original ResNet9: Adam, 10 epochs at lr 1e-3 then 10 at 1e-4, 64 px",
            model="resnet9",
            epochs=20,
            batch_size=64,
            optimizer="adam",
            lr=1e-3,
            schedule="step",
            step_epochs=(10,),
            step_gamma=0.1,
            input_size=64,
        ),
        Recipe(
            name="original-transfer",
            summary="The original transfer recipe: Adam + weight decay, one-cycle LR, "
                    "gradient clipping, 5 epochs, whole pretrained network fine-tuned "
                    "(the trunk at a tenth of the head's LR)",
            model="efficientnet_lite0",
            epochs=5,
            batch_size=32,
            optimizer="adam",
            # The write-up gives no LR. On split seed 1 a new head at 1e-3 over a trunk at
            # 1e-4 (with label smoothing) beat one LR for all (docs/TUNING.md)
            lr=1e-3,
            trunk_lr_scale=0.1,
            weight_decay=1e-4,
            schedule="onecycle",
            grad_clip_value=0.1,
            label_smoothing=0.1,
            # whole 256 px squares: +20 images right over 12 models on two other splits
            # (docs/TUNING.md)
            eval_crop="full",
            # pretrained batch norm statistics kept: +9 images over four runs on two other
            # splits (docs/TUNING.md)
            freeze_bn=True,
        ),
        Recipe(
            name="fast-resnet9",
            summary="ResNet9 from scratch, fast on a CPU: narrower, one-cycle AdamW, label "
                    "smoothing, mirrored test-time views",
            model="resnet9",
            epochs=12,
            batch_size=64,
            optimizer="adamw",
            lr=4e-3,
            weight_decay=0.05,
            schedule="onecycle",
            label_smoothing=0.1,
            input_size=64,
            width=0.25,
            # the mirrored view: +7 of 1293 images over three splits, for 1.7 ms an image
            # (docs/RESULTS.md); fast-transfer gained 1 for 24 ms, original-transfer none
            tta_flip=True,
        ),
        Recipe(
            name="fast-transfer",
            summary="Pretrained trunk run once (ONNX Runtime), cached; only the top trains",
            model="efficientnet_lite0",
            mode="cached",
            train_from="conv_head",
            epochs=12,
            batch_size=64,
            optimizer="adamw",
            lr=2e-3,
            weight_decay=0.05,
            schedule="onecycle",
            label_smoothing=0.1,
        ),
    ]
}


def _parse_value(recipe_field: dataclasses.Field, text: str) -> object:
    kind = str(recipe_field.type)
    if text.lower() in {"none", "null"} and "None" in kind:
        return None
    try:
        if kind.startswith("tuple"):
            return tuple(int(x) for x in text.split(",") if x.strip())
        if kind.startswith("bool"):
            if text.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            return text.lower() in {"true", "1", "yes"}
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError as exc:
        raise PetalError(f"--set {recipe_field.name}={text}: expected {kind}") from exc
    return text


_FIXED = {"name", "summary"}  # identify a recipe; not overridable


MAX_LR = 10.0  # a learning rate above this diverges in any recipe
MIN_INPUT, MAX_INPUT = 32, 2048  # px: ResNet9 needs 32 to pool; model cards allow 2048


def get_recipe(name: str, overrides: list[str] | None = None) -> Recipe:
    """The named recipe with `FIELD=VALUE` overrides applied; PetalError on any unknown name."""
    if name not in RECIPES:
        raise PetalError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} "
                         "(`petal recipes` describes them)")
    by_name = {f.name: f for f in fields(Recipe)}
    changes = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in by_name or key in _FIXED:
            raise PetalError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(f for f in by_name if f not in _FIXED)}")
        changes[key] = _parse_value(by_name[key], value.strip())
    recipe = dataclasses.replace(RECIPES[name], **changes)
    validate(recipe)
    return recipe


def validate(recipe: Recipe) -> None:
    choices = {"mode": {"full", "cached"}, "optimizer": {"adam", "adamw"},
               "eval_crop": {"center", "full"},
               "schedule": {"step", "onecycle"}}
    for key, allowed in choices.items():
        if getattr(recipe, key) not in allowed:
            raise PetalError(f"recipe field {key}={getattr(recipe, key)!r}: "
                             f"use one of {', '.join(sorted(allowed))}")
    if recipe.mode == "cached" and recipe.eval_crop != "center":
        raise PetalError("recipe field eval_crop: full mode only (a cached-mode recipe "
                         "trains a cut-off top on stored features of central crops)")
    if recipe.epochs < 1 or recipe.batch_size < 1 or recipe.seed < 0:
        raise PetalError("recipe fields epochs and batch_size must be >= 1, seed >= 0")
    ranges = {  # field: (lowest, highest, the lowest allowed itself): what trains at all
        "lr": (0.0, MAX_LR, False), "trunk_lr_scale": (0.0, 1e3, False),
        "weight_decay": (0.0, 1e3, True), "label_smoothing": (0.0, 1.0, True),
        "step_gamma": (0.0, 1.0, False), "grad_clip_value": (0.0, 1e6, False),
        "width": (0.0, 8.0, False), "input_size": (MIN_INPUT, MAX_INPUT, True)}
    for key, (low, high, closed) in ranges.items():
        value = getattr(recipe, key)
        if value is None and key in ("grad_clip_value", "width", "input_size"):
            continue
        inside = (isinstance(value, (int, float)) and math.isfinite(value)
                  and (value >= low if closed else value > low) and value <= high)
        if not inside or (key == "label_smoothing" and value >= 1):
            raise PetalError(f"recipe field {key}={value!r}: use a number "
                             f"{'from' if closed else 'above'} {low:g} up to {high:g}"
                             + (" (below 1)" if key == "label_smoothing" else ""))
    if any(epoch < 1 for epoch in recipe.step_epochs):
        raise PetalError(f"recipe field step_epochs={recipe.step_epochs!r}: epochs from 1")


def recipe_from_json(data: dict) -> Recipe:
    """The recipe a run folder saved; PetalError for one with fields this petal does not know
    (an older petal's, since removed: resuming would train differently, docs/TUNING.md)."""
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PetalError(f"this run's recipe has fields petal {__version__} does not know "
                         f"({', '.join(unknown)}): it was made by an older petal; resume it "
                         "with that one, or train again")
    recipe = Recipe(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
    validate(recipe)
    return recipe


def describe_recipes() -> str:
    lines = []
    for recipe in RECIPES.values():
        lines.append(f"{recipe.name}: {recipe.summary}")
        values = ", ".join(f"{f.name}={getattr(recipe, f.name)}" for f in fields(Recipe)
                           if f.name not in {"name", "summary"})
        lines.append(f"  {values}")
    return "\n".join(lines)
