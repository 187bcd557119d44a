"""fastai's side of `vs_fastai.py`: runs inside fastai's own virtual environment.

    .cache/fastai-venv/bin/python benchmarks/fastai_worker.py --task transfer --data DATA \
        --split SPLIT --weights WEIGHTS.safetensors --json OUT.json
    .cache/fastai-venv/bin/python benchmarks/fastai_worker.py --task scratch --data DATA \
        --split SPLIT --json OUT.json

transfer: fastai's standard transfer recipe for 224 px (fastbook, chapter 5, "presizing"):
`item_tfms=Resize(460)`, `batch_tfms=aug_transforms(size=224, min_scale=0.75)`, batch
size 64 (fastai's default), `vision_learner(dls, "tf_efficientnet_lite0", ...)` with
timm's default head replaced by fastai's, then `learn.fine_tune(epochs, freeze_epochs)`
with fine_tune's default learning rates. The ImageNet weights come from WEIGHTS (timm
layout, 1000-class head) through timm's `pretrained_cfg_overlay=dict(file=...)`;
`check_weights` proves every body tensor came from that file. fastai normalises with
the timm model's `default_cfg` mean/std (`_timm_norm` in fastai/vision/learner.py): 0.5.

scratch: fastai's from-scratch baseline (fastbook, chapter 7, Imagenette:
`Learner(dls, model, metrics=accuracy)` and `learn.fit_one_cycle(5, 3e-3)`, ImageNet
normalisation, presizing) applied to the original ResNet9 at petal's 64 px:
`item_tfms=Resize(128)`, `batch_tfms=aug_transforms(size=64, min_scale=0.75)`. The
network is petal's ResNet9 class (src/petal/models/resnet9.py, plain torch), imported
from the source tree so both tools train the same architecture.

Writes JSON: CLOCK_MONOTONIC stamps (comparable with the launching process) of the
worker's start and of the end of each epoch (validation included), with the epoch's
losses and validation accuracy.
"""

from __future__ import annotations

import time

STARTED = time.clock_gettime(time.CLOCK_MONOTONIC)  # before the heavy imports: they count

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from fastai.vision.all import (  # noqa: E402
    Callback,
    CategoryBlock,
    DataBlock,
    ImageBlock,
    IndexSplitter,
    ItemGetter,
    Learner,
    Normalize,
    Resize,
    accuracy,
    aug_transforms,
    imagenet_stats,
    vision_learner,
)
from safetensors.torch import load_file  # noqa: E402

ARCH = "tf_efficientnet_lite0"
PRESIZE = {"transfer": 460, "scratch": 128}  # fastbook's presizing: about twice the crop
SIZE = {"transfer": 224, "scratch": 64}
MIN_SCALE = 0.75
SCRATCH_LR = 3e-3
SOURCE = Path(__file__).resolve().parents[1] / "src"


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class EpochClock(Callback):
    """After each epoch (validation done): the time, the phase and the Recorder's values."""

    order = 60  # after the Recorder (50), which has then stored the epoch's metrics

    def __init__(self, phases: tuple[str, ...]) -> None:
        self.rows: list[dict] = []
        self.phases = phases  # one name per fit() call: fine_tune calls it twice
        self.phase = 0

    def before_fit(self) -> None:
        self.phase += 1

    def after_epoch(self) -> None:
        names = self.recorder.metric_names[1:-1]  # drop "epoch" and "time"
        values = dict(zip(names, map(float, self.recorder.values[-1])))
        row = {"epoch": len(self.rows) + 1, "phase": self.phases[self.phase - 1],
               "train_loss": values["train_loss"], "val_loss": values["valid_loss"],
               "val_acc": values["accuracy"], "clock": now()}
        self.rows.append(row)
        print(f"epoch {row['epoch']} ({row['phase']}): train_loss {row['train_loss']:.4f} "
              f"val_loss {row['val_loss']:.4f} val_acc {row['val_acc']:.4f} "
              f"{row['clock'] - STARTED:.1f} s", flush=True)


def items_of(data: Path, split: dict) -> tuple[list[tuple[Path, str]], list[int]]:
    """(path, label) of the split's train then val items, and the val items' indices."""
    train = [(data / i["path"], i["label"]) for i in split["train"]]
    val = [(data / i["path"], i["label"]) for i in split["val"]]
    return train + val, list(range(len(train), len(train) + len(val)))


def check_weights(body: torch.nn.Module, weights: Path) -> int:
    """Every tensor of the body equals the file's tensor of that name (the file's 1000-class
    classifier aside, which fastai replaces); returns how many were compared."""
    state = {k: v for k, v in load_file(weights).items() if not k.startswith("classifier.")}
    loaded = body.state_dict()
    if set(loaded) != set(state):
        raise SystemExit(f"{weights} does not fit {ARCH}: "
                         f"{sorted(set(loaded) ^ set(state))[:5]} differ")
    different = [k for k, v in state.items() if not torch.equal(v, loaded[k])]
    if different:
        raise SystemExit(f"timm did not load {weights}: {different[:5]} differ")
    return len(state)


def normalisation(dls) -> dict[str, list[float]]:
    norm = next(t for t in dls.after_batch.fs if isinstance(t, Normalize))
    return {"mean": norm.mean.flatten().tolist(), "std": norm.std.flatten().tolist()}


def resnet9(num_classes: int) -> torch.nn.Module:
    """petal's ResNet9 (plain torch; its module imports nothing of petal's heavy parts)."""
    sys.path.insert(0, str(SOURCE))
    from petal.models.resnet9 import ResNet9

    return ResNet9(num_classes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["transfer", "scratch"], default="transfer")
    parser.add_argument("--data", type=Path, required=True, help="the split's data root")
    parser.add_argument("--split", type=Path, required=True, help="petal split JSON")
    parser.add_argument("--weights", type=Path, help=f"{ARCH} state dict (transfer)")
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--epochs", type=int, help="transfer: unfrozen epochs (default 2); "
                        "scratch: fit_one_cycle epochs (default 5)")
    parser.add_argument("--freeze-epochs", type=int, default=1, help="transfer; default 1")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    transfer = args.task == "transfer"
    if transfer and args.weights is None:
        parser.error("--task transfer needs --weights")
    epochs = args.epochs or (2 if transfer else 5)

    split = json.loads(args.split.read_text())
    items, val_indices = items_of(args.data, split)
    augment = aug_transforms(size=SIZE[args.task], min_scale=MIN_SCALE)
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ItemGetter(0),
                      get_y=ItemGetter(1), splitter=IndexSplitter(val_indices),
                      item_tfms=Resize(PRESIZE[args.task]),
                      batch_tfms=augment if transfer
                      else [*augment, Normalize.from_stats(*imagenet_stats)])
    dls = block.dataloaders(items, bs=args.batch_size, num_workers=args.workers,
                            device=torch.device("cpu"))
    clock = EpochClock(("frozen", "unfrozen") if transfer else ("one-cycle",))
    if transfer:
        learn = vision_learner(dls, ARCH, pretrained=True,
                               pretrained_cfg_overlay={"file": str(args.weights)},
                               metrics=accuracy, cbs=[clock])
        compared = check_weights(learn.model[0].model, args.weights)
        call = f"learn.fine_tune({epochs}, freeze_epochs={args.freeze_epochs})"
        arch, head = ARCH, "fastai create_head (concat pooling)"
    else:
        learn = Learner(dls, resnet9(dls.c), metrics=accuracy, cbs=[clock])
        compared = 0
        call = f"learn.fit_one_cycle({epochs}, {SCRATCH_LR})"
        arch, head = "resnet9 (petal's class, width 1.0, random init)", "its own"
    norm = normalisation(dls)
    print(f"fastai {version('fastai')}: {len(items) - len(val_indices)} train / "
          f"{len(val_indices)} val images, {arch}, {compared} ImageNet tensors loaded, "
          f"normalised with mean {norm['mean']} std {norm['std']}", flush=True)
    with learn.no_bar():
        if transfer:
            learn.fine_tune(epochs, freeze_epochs=args.freeze_epochs)
        else:
            learn.fit_one_cycle(epochs, SCRATCH_LR)
    args.json.write_text(json.dumps({
        "started_clock": STARTED,
        "epochs": clock.rows,
        "n_train": len(items) - len(val_indices),
        "n_val": len(val_indices),
        "recipe": {"call": call,
                   "item_tfms": f"Resize({PRESIZE[args.task]})",
                   "batch_tfms": f"aug_transforms(size={SIZE[args.task]}, min_scale={MIN_SCALE})",
                   "batch_size": args.batch_size, "num_workers": args.workers,
                   "arch": arch, "head": head},
        "normalisation": norm,
        "weights_tensors_checked": compared,
        "torch_threads": torch.get_num_threads(),
        "versions": {p: version(p) for p in ("fastai", "fastcore", "timm", "torch",
                                             "torchvision")},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
