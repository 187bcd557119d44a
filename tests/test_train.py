"""Training: recipes, the run folder, model-folder round trip, resume, DDP, bad input."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.transforms.v2.functional import resize

import petal
from petal.cli import main
from petal.data.cache import DecodedCache
from petal.errors import PetalError
from petal.evaluate import evaluate
from petal.modelio import find_model_folder, load_model
from petal.models.registry import build_model
from petal.train.data import CachedImages
from petal.train.fit import TrainerOptions, TrainRequest, fit, prepare, resume
from petal.train.history import HISTORY_COLUMNS, read_history
from petal.train.module import (
    ClassifierModule,
    build_optimizer,
    classifier_head,
    parameter_groups,
)
from petal.train.recipes import get_recipe

# A ResNet9 at 1/8 width on 32 px images: the real architecture, seconds to train.
TINY = ["--set", "width=0.125", "--set", "input_size=32", "--set", "batch_size=4"]


@pytest.fixture
def tiny_recipe():
    return get_recipe("seed-resnet9", ["width=0.125", "input_size=32", "batch_size=4",
                                       "epochs=3", "step_epochs=2"])


def _train(image_folder: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(image_folder), "--recipe", "seed-resnet9", *TINY,
                 "--set", "epochs=2", "--out", str(out), "--no-progress",
                 "--cache-dir", str(out.parent / "cache"), *extra])


def test_recipe_overrides() -> None:
    recipe = get_recipe("seed-transfer", ["epochs=2", "lr=0.01", "grad_clip=none",
                                          "step_epochs=3,6", "flip=false"])
    assert (recipe.epochs, recipe.lr, recipe.grad_clip, recipe.step_epochs, recipe.flip) == (
        2, 0.01, None, (3, 6), False)
    assert get_recipe("seed-resnet9").epochs == 20  # the named recipe itself is unchanged
    for bad, message in [(["nope=1"], "FIELD=VALUE"), (["epochs=two"], "expected int"),
                         (["optimizer=lbfgs"], "optimizer"), (["epochs"], "FIELD=VALUE"),
                         (["drop_path_rate=1"], "drop_path_rate < 1")]:
        with pytest.raises(PetalError, match=message):
            get_recipe("seed-transfer", bad)
    with pytest.raises(PetalError, match="unknown recipe"):
        get_recipe("fastest")
    with pytest.raises(PetalError, match="drop_rate: full mode only"):
        get_recipe("fast-transfer", ["drop_rate=0.2"])


@pytest.mark.parametrize("name", ["resnet9", "timm:resnet18", "squeezenet1_0"])
def test_trunk_trains_at_a_scaled_learning_rate(name: str) -> None:
    network, _ = build_model(name, 3, **({"width": 0.125} if name == "resnet9" else {}))
    head = classifier_head(network)
    assert head.weight.shape[0] == 3  # the fresh 3-way head, not a layer of the trunk
    recipe = get_recipe("seed-transfer", ["lr=0.01", "trunk_lr_scale=0.1"])
    groups = parameter_groups(network, recipe.lr, recipe.trunk_lr_scale)
    assert [len(g["params"]) for g in groups] == [2, len(list(network.parameters())) - 2]
    optimizer = build_optimizer(groups, recipe, total_steps=100)["optimizer"]
    peaks = [g["max_lr"] for g in optimizer.param_groups]  # set by OneCycleLR
    assert peaks == pytest.approx([0.01, 0.001])
    with pytest.raises(PetalError, match="trunk_lr_scale"):
        get_recipe("seed-transfer", ["trunk_lr_scale=0"])


def test_layer_lr_decay_lowers_each_layer_below_the_top() -> None:
    network, _ = build_model("efficientnet_lite0", 3, weights="none")
    groups = parameter_groups(network, 0.01, trunk_lr_scale=0.5, layer_decay=0.5)
    lrs = [g["lr"] for g in groups]
    # head, then 17 timm layers from the top (head conv + last block) down to the stem
    assert lrs == pytest.approx([0.01] + [0.005 * 0.5 ** i for i in range(17)])
    assert [p for g in groups[:3] for p in g["params"]] == [
        *network.classifier.parameters(), *network.blocks[6].parameters(),
        *network.conv_head.parameters(), *network.bn2.parameters(),
        *network.blocks[5][3].parameters()]
    assert sum(len(g["params"]) for g in groups) == len(list(network.parameters()))
    with pytest.raises(PetalError, match="needs a timm model"):
        parameter_groups(build_model("resnet9", 3)[0], 0.01, 0.5, layer_decay=0.5)
    with pytest.raises(PetalError, match="layer_lr_decay"):
        get_recipe("seed-transfer", ["layer_lr_decay=0"])


def test_random_resized_crops_are_seeded_and_leave_torch_rng_alone() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    crops = CachedImages(pixels, np.array([0, 1]), crop=32, flip=False, min_area=0.3)
    rng_state = torch.get_rng_state()
    first, label = crops[(1, 7)]
    assert first.shape == (3, 32, 32) and first.dtype == torch.uint8 and label == 1
    assert torch.equal(crops[(1, 7)][0], first)  # (index, seed) fixes the crop
    assert any(not torch.equal(crops[(1, seed)][0], first) for seed in range(5))
    assert torch.equal(torch.get_rng_state(), rng_state)
    whole = CachedImages(pixels, np.array([0, 1]), crop=32, flip=False, min_area=1.0)[(0, 3)][0]
    image = torch.from_numpy(pixels[0]).permute(2, 0, 1)
    assert torch.equal(whole, resize(image, [32, 32], antialias=True))  # all of the image
    assert torch.equal(crops[0][0], image[:, 4:36, 4:36])  # evaluation: the central crop
    with pytest.raises(PetalError, match="crop_area"):
        get_recipe("seed-transfer", ["crop_area=1.5"])


def _random_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four random 16 px uint8 images with labels of 3 classes."""
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    return torch.from_numpy(images), torch.tensor([0, 1, 2, 0])


def test_mixup_and_cutmix_blend_seeded_batches() -> None:
    recipe = get_recipe("seed-resnet9", ["mixup=0.4", "cutmix=1.0", "label_smoothing=0.1"])
    network, spec = build_model("resnet9", 3, width=0.125, input_size=16)
    module = ClassifierModule(network, recipe, 3, spec)
    images, labels = _random_batch()
    np.random.seed(5)
    numpy_state = np.random.get_state()[1].copy()
    mixed, soft = module.mixed_batch(images, labels, batch_idx=3)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # numpy's RNG left alone
    again, _ = module.mixed_batch(images, labels, batch_idx=3)
    assert torch.equal(mixed, again)  # (seed, epoch, batch) fix the blend
    assert any(not torch.equal(module.mixed_batch(images, labels, i)[0], mixed)
               for i in range(4))
    assert not torch.equal(mixed, module.normalised(images))
    assert soft.shape == (4, 3) and torch.allclose(soft.sum(1), torch.ones(4))
    assert soft.min() > 0  # label smoothing carried into the mixed targets
    for bad, message in [(["mixup=-1"], "mixup, cutmix, sam >= 0"),
                         (["cutmix=1", "batch_size=5"], "must be even")]:
        with pytest.raises(PetalError, match=message):
            get_recipe("seed-transfer", bad)
    with pytest.raises(PetalError, match="mixup: full mode only"):
        get_recipe("fast-transfer", ["mixup=0.2"])


def test_sam_steps_with_the_gradient_at_the_perturbed_weights() -> None:
    """One Lightning step with sam=0.05 against SAM written out: gradient g at w, gradient
    at w + rho g/|g|, SGD from w with the latter; the loss logged and the batch norm
    statistics are those of the pass at w. (SGD, as Adam's first step is +-lr wherever the
    gradient is not 0, and the biases of convolutions before batch norm get rounding noise.)"""
    recipe = get_recipe("seed-resnet9", ["sam=0.05", "schedule=constant", "optimizer=sgd",
                                         "lr=0.1"])
    network, spec = build_model("resnet9", 3, width=0.125, input_size=16)
    reference = ClassifierModule(copy.deepcopy(network), recipe, 3, spec)
    module = ClassifierModule(network, recipe, 3, spec)
    images, labels = _random_batch()
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                          batch_size=4)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, batches)

    weights = [p for p in reference.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(reference(images), labels)
    statistics = [b.clone() for b in reference.buffers()]
    gradients = torch.autograd.grad(loss, weights)
    norm = torch.cat([g.flatten() for g in gradients]).norm()
    with torch.no_grad():
        for weight, gradient in zip(weights, gradients, strict=True):
            weight.add_(0.05 * gradient / norm)
    perturbed_gradients = torch.autograd.grad(
        nn.functional.cross_entropy(reference(images), labels), weights)
    with torch.no_grad():
        for weight, gradient in zip(weights, gradients, strict=True):
            weight.sub_(0.05 * gradient / norm)
            weight.grad = None
    sgd = torch.optim.SGD(weights, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    for weight, gradient in zip(weights, perturbed_gradients, strict=True):
        weight.grad = gradient
    sgd.step()

    for ours, expected in zip(module.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, expected)
    for ours, expected in zip(module.buffers(), statistics, strict=True):
        torch.testing.assert_close(ours, expected)  # running statistics: the pass at w only
    assert trainer.callback_metrics["train_loss"].item() == pytest.approx(loss.item())
    with pytest.raises(PetalError, match="sam >= 0"):
        get_recipe("seed-transfer", ["sam=-0.1"])
    with pytest.raises(PetalError, match="not with --precision 16-mixed"):
        prepare(TrainRequest(data=Path("unread"), recipe=recipe, out=Path("unwritten"),
                             trainer=TrainerOptions(precision="16-mixed")))


@pytest.mark.parametrize("freeze_bn", [False, True])
def test_freeze_bn_keeps_running_statistics(image_folder: Path, tmp_path: Path,
                                            freeze_bn: bool) -> None:
    assert _train(image_folder, tmp_path / "run", "--set", f"freeze_bn={freeze_bn}") == 0
    model, _ = load_model(tmp_path / "run")
    means = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert means and all(torch.all(m == 0) for m in means) is freeze_bn  # 0: as initialised


def test_run_folder(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert _train(image_folder, run) == 0
    out = capsys.readouterr().out
    assert "train_loss" in out and "Done: validation accuracy" in out
    for name in ["config.json", "split.json", "history.csv", "lr_steps.csv", "accuracy.png",
                 "loss.png", "lr.png", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                 "model/model.safetensors", "model/model.json"]:
        assert (run / name).is_file(), name
    with open(run / "history.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HISTORY_COLUMNS
        rows = list(reader)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r["val_acc"]) <= 1 for r in rows)
    assert float(rows[1]["elapsed_seconds"]) > float(rows[0]["elapsed_seconds"])
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["classes"] == ["cat", "dog", "fox"]
    assert card["architecture"]["name"] == "resnet9" and card["input"]["size"] == 32
    assert card["split"] == "../split.json" and (run / "model" / card["split"]).is_file()
    assert card["metrics"]["val_acc"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-5)
    assert card["recipe"]["name"] == "seed-resnet9" and card["petal_version"]
    assert find_model_folder(run) == run / "model"
    assert _train(image_folder, run) == 1  # the run folder is never overwritten
    assert "--resume" in capsys.readouterr().err


def test_model_folder_round_trip_without_pickle(image_folder: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                tiny_recipe) -> None:
    request = TrainRequest(data=image_folder, recipe=tiny_recipe, out=tmp_path / "run",
                           cache_dir=str(tmp_path / "cache"))
    result = fit(request, time.perf_counter(), progress=False)
    trained = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("model folders never unpickle"))
    model, card = load_model(result.run_dir)
    state = {k.removeprefix("network."): v for k, v in trained["state_dict"].items()}
    reference, _ = load_model(result.model_dir)
    reference.load_state_dict(state)
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(model(images), reference(images))
    assert card.classes == ["cat", "dog", "fox"]


def test_ema_validates_and_saves_the_averaged_weights(image_folder: Path, tmp_path: Path,
                                                      tiny_recipe) -> None:
    recipe = dataclasses.replace(tiny_recipe, ema=0.9)
    request = TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                           cache_dir=str(tmp_path / "cache"))
    result = fit(request, time.perf_counter(), progress=False)
    last = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    saved = load_file(result.model_dir / "model.safetensors")

    def network(state: dict) -> dict:
        return {k.removeprefix("network."): v for k, v in state.items()
                if k.startswith("network.")}

    average, raw = network(last["state_dict"]), network(last["current_model_state"])
    assert all(torch.equal(saved[k], average[k]) for k in saved)
    assert not all(torch.equal(average[k], raw[k]) for k in average)  # not the raw weights
    metrics = evaluate(result.run_dir, out=tmp_path / "eval", progress=False,
                       cache_dir=tmp_path / "cache")
    assert metrics["accuracy"] == pytest.approx(result.val_acc, abs=1e-5)
    with pytest.raises(PetalError, match="ema"):
        get_recipe("seed-transfer", ["ema=1"])


def test_eval_crop_full_validates_and_saves_whole_squares(image_folder: Path, tmp_path: Path,
                                                          tiny_recipe) -> None:
    recipe = dataclasses.replace(tiny_recipe, eval_crop="full")
    request = TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                           cache_dir=str(tmp_path / "cache"))
    result = fit(request, time.perf_counter(), progress=False)
    trained = json.loads((result.run_dir / "config.json").read_text())["input"]
    saved = json.loads((result.model_dir / "model.json").read_text())["input"]
    assert trained["size"] == 32 and trained["resize_size"] == 37  # random 32 px crops of 37
    assert saved["size"] == saved["resize_size"] == 37 and saved["crop_pct"] == 1.0
    classifier = petal.load(result.run_dir)
    photo = sorted((image_folder / "cat").iterdir())[0]
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    square = DecodedCache(tmp_path / "cache", 37).ensure([(photo, digest)], progress=False)[0]
    np.testing.assert_array_equal(classifier.prepare(photo), square)  # nothing cropped away
    metrics = evaluate(result.run_dir, out=tmp_path / "eval", progress=False,
                       cache_dir=tmp_path / "cache")
    assert metrics["accuracy"] == pytest.approx(result.val_acc, abs=1e-5)
    with pytest.raises(PetalError, match="eval_crop.*full mode only"):
        get_recipe("fast-transfer", ["eval_crop=full"])
    with pytest.raises(PetalError, match="eval_crop='middle'"):
        get_recipe("seed-transfer", ["eval_crop=middle"])


class _Crash(L.Callback):
    """Stops a run at the start of epoch `at`, as a killed process would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("changes", [{}, {"ema": 0.9}, {"mixup": 0.4, "cutmix": 1.0},
                                     {"sam": 0.05}])
def test_resume_gives_the_uninterrupted_history(image_folder: Path, tmp_path: Path,
                                                tiny_recipe, changes: dict) -> None:
    recipe = dataclasses.replace(tiny_recipe, **changes)

    def request(name: str) -> TrainRequest:
        return TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / name,
                            cache_dir=str(tmp_path / "cache"))

    fit(request("straight"), time.perf_counter(), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(request("crashed"), time.perf_counter(), progress=False, extra_callbacks=[_Crash(at=2)])
    assert len(read_history(tmp_path / "crashed" / "history.csv")) == 2
    assert not (tmp_path / "crashed" / "model").exists()
    resume(tmp_path / "crashed", time.perf_counter(), progress=False)

    def learned(name: str) -> list[list[float]]:
        rows = read_history(tmp_path / name / "history.csv")
        return [[r[k] for k in ("epoch", "train_loss", "val_loss", "val_acc", "lr")] for r in rows]

    assert learned("crashed") == learned("straight")
    assert len(learned("straight")) == 3
    steps = [(tmp_path / name / "lr_steps.csv").read_text() for name in ("crashed", "straight")]
    assert steps[0] == steps[1]


class _RunsCode:
    """Unpickling this object calls os.system: what a crafted checkpoint can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("content", ["code", "truncated", "not a checkpoint"])
def test_resume_never_runs_code_from_the_checkpoint(tiny_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture,
                                                    content: str) -> None:
    run, marker = tmp_path / "run", tmp_path / "ran"
    shutil.copytree(tiny_run, run)
    last = run / "checkpoints" / "last.ckpt"
    good = torch.load(last, weights_only=True)
    if content == "code":
        torch.save({**good, "payload": _RunsCode(marker)}, last)
    elif content == "truncated":
        last.write_bytes(last.read_bytes()[:5000])
    else:
        torch.save([1, 2, 3], last)
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "new --out folder" in err and "Traceback" not in err
    assert not marker.exists()


def test_ddp_two_processes_only_rank_zero_writes(image_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    petal = Path(sys.executable).with_name("petal")
    done = subprocess.run(
        [petal, "train", "--data", str(image_folder), "--recipe", "seed-resnet9", *TINY,
         "--set", "epochs=2", "--out", str(run), "--no-progress", "--cache-dir",
         str(tmp_path / "cache"), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--lr", "auto"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Done: validation accuracy") == 1
    assert len(read_history(run / "history.csv")) == 2
    steps = (run / "lr_steps.csv").read_text().splitlines()[1:]
    assert len(steps) == len({line.split(",")[0] for line in steps})  # one writer
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["accuracy.png", "checkpoints", "config.json", "history.csv", "loss.png", "lr.png",
         "lr_find.png", "lr_steps.csv", "model", "split.json"])
    config = json.loads((run / "config.json").read_text())
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["recipe"]["lr"] == config["lr_found"]  # trained at the suggestion
    model, _ = load_model(run)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet9000"], "unknown model"),
        (["--recipe", "nope"], "unknown recipe"),
        (["--set", "colour=red"], "field=value"),
        (["--set", "drop_rate=0.2"], "drop_rate does not apply to resnet9"),
    ],
)
def test_bad_input_fails_before_training(image_folder: Path, tmp_path: Path, args: list[str],
                                         message: str, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    code = main(["train", "--data", str(image_folder), "--recipe", "seed-resnet9", *TINY,
                 "--out", str(run), "--no-progress", "--cache-dir", str(tmp_path / "c"), *args])
    assert code == 1
    assert message in capsys.readouterr().err.lower()
    assert not run.exists()


def test_small_training_set_adapts_the_batch_size(image_folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--recipe", "seed-resnet9", *TINY,
                 "--set", "batch_size=64", "--set", "epochs=1", "--out", str(run),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "note: 9 training images, fewer than the recipe's batch size 64: training with " \
           "batch size 4" in out
    config = json.loads((run / "config.json").read_text())
    card = json.loads((run / "model" / "model.json").read_text())
    assert config["recipe"]["batch_size"] == card["recipe"]["batch_size"] == 4


@pytest.mark.parametrize(("lr", "message"), [("0.1", "lr '0.1'"), (-1.0, "positive"),
                                             (True, "lr True")])
def test_request_lr_is_a_number_or_auto(image_folder: Path, lr: object, message: str) -> None:
    with pytest.raises(PetalError, match=message):
        TrainRequest(data=image_folder, recipe=get_recipe("seed-resnet9"), out=Path("x"), lr=lr)
    assert TrainRequest(data=image_folder, recipe=get_recipe("seed-resnet9"), out=Path("x"),
                        lr=1).lr == 1.0


def test_checks_come_before_the_header(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv in (["train", "--data", str(tmp_path / "nope")], ["lr-find"],
                 ["run", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "main")]):
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: "), argv
    assert not (tmp_path / "main").exists()


def test_train_defaults_to_the_fast_transfer_recipe() -> None:
    from petal.cli import build_parser

    assert build_parser().parse_args(["train", "--data", "x"]).recipe == "fast-transfer"


def test_progress_bars_only_on_a_terminal_unless_asked(image_folder: Path,
                                                       tmp_path: Path) -> None:
    petal = Path(sys.executable).with_name("petal")

    def train(name: str, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([petal, "train", "--data", str(image_folder), "--recipe",
                               "seed-resnet9", *TINY, "--set", "epochs=2", "--out",
                               str(tmp_path / name), "--cache-dir", str(tmp_path / "c"), *flags],
                              capture_output=True, text=True, timeout=300)

    piped = train("piped")
    assert piped.returncode == 0, piped.stderr
    log = piped.stdout + piped.stderr
    assert "\r" not in log and "\x1b[" not in log and "%|" not in log
    assert log.count("\n") < 40 and "Done:" in piped.stdout
    forced = train("forced", "--progress")
    assert forced.returncode == 0 and "%|" in forced.stderr  # a tqdm bar


def test_bad_data_and_weights(tmp_path: Path, image_folder: Path,
                              capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "one" / "only").mkdir(parents=True)
    assert main(["train", "--data", str(tmp_path / "one"), "--out", str(tmp_path / "r1")]) == 1
    assert "class" in capsys.readouterr().err
    weights = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    assert main(["train", "--data", str(image_folder), "--model", "resnet18", "--weights",
                 str(weights), "--out", str(tmp_path / "r2")]) == 1
    assert "w.pth" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
