"""Training: recipes, the run folder, model-folder round trip, resume, DDP, bad input."""

from __future__ import annotations

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

import petal
from petal.cli import main
from petal.data.decoded_cache import DecodedCache
from petal.errors import PetalError
from petal.inference.model_folder import load_model
from petal.jobs.evaluate import EvalRequest, evaluate
from petal.models.features import classifier_head
from petal.models.registry import build_model
from petal.run_folder import HISTORY_COLUMNS, find_model_folder, read_history
from petal.training.fit import TrainRequest, request_from_run, resume
from petal.training.module import build_optimizer, parameter_groups
from petal.training.orchestrator import train_model
from petal.training.recipes import RECIPES, get_recipe

# A ResNet9 at 1/8 width on 32 px images: the real architecture, seconds to train.
TINY = ["--set", "width=0.125", "--set", "input_size=32", "--set", "batch_size=4"]


@pytest.fixture
def tiny_recipe():
    return get_recipe("original-resnet9", ["width=0.125", "input_size=32", "batch_size=4",
                                       "epochs=3", "step_epochs=2"])


def _train(image_folder: Path, out: Path, *extra: str) -> int:
    """`petal train` with a held-out split (--folds 0: the run folder's own validation)."""
    return main(["train", "--data", str(image_folder), "--recipe", "original-resnet9", *TINY,
                 "--folds", "0",
                 "--set", "epochs=2", "--out", str(out), "--no-progress",
                 "--cache-dir", str(out.parent / "cache"), *extra])


def test_recipe_overrides() -> None:
    recipe = get_recipe("original-transfer", ["epochs=2", "lr=0.01", "grad_clip_value=none",
                                              "step_epochs=3,6", "flip=false"])
    assert (recipe.epochs, recipe.lr, recipe.grad_clip_value, recipe.step_epochs,
            recipe.flip) == (2, 0.01, None, (3, 6), False)
    assert get_recipe("original-resnet9").epochs == 20  # the named recipe itself is unchanged
    for bad, message in [(["nope=1"], "FIELD=VALUE"), (["epochs=two"], "expected int"),
                         (["optimizer=sgd"], "optimizer"), (["epochs"], "FIELD=VALUE"),
                         (["schedule=cosine"], "schedule"), (["sam=0.05"], "FIELD=VALUE"),
                         (["lr=0"], "lr=0.0: use a number above 0"),
                         (["weight_decay=-1"], "weight_decay"),
                         (["input_size=8"], "input_size=8: use a number from 32"),
                         (["label_smoothing=1"], "label_smoothing")]:
        with pytest.raises(PetalError, match=message):
            get_recipe("original-transfer", bad)
    with pytest.raises(PetalError, match="unknown recipe"):
        get_recipe("fastest")
    with pytest.raises(PetalError, match="eval_crop: full mode only"):
        get_recipe("fast-transfer", ["eval_crop=full"])


def _saved_config(run: Path, recipe: dict) -> None:
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "data": "photos", "model": "efficientnet_lite0", "weights": "imagenet",
        "recipe": recipe, "lr": None, "split": "split.json",
        "trainer": {"accelerator": "cpu", "devices": "1", "num_nodes": 1, "strategy": "auto",
                    "precision": "32-true"}}))


def test_a_saved_recipe_resumes_unless_an_older_petal_wrote_it(tmp_path: Path) -> None:
    """Today's fields come back as they were; fields a recipe no longer has (petal 0.2's
    warmup_fraction and trunk_engine, 0.1's ema, ...) are refused, not dropped."""
    recipe = get_recipe("original-transfer", ["lr=0.02", "step_epochs=2,4"])
    _saved_config(tmp_path / "now", dataclasses.asdict(recipe))
    assert request_from_run(tmp_path / "now").recipe == recipe
    _saved_config(tmp_path / "old", {**dataclasses.asdict(recipe), "warmup_fraction": 0.25,
                                     "ema": 0.99})
    with pytest.raises(PetalError, match=r"fields petal \S+ does not know \(ema, "
                                         r"warmup_fraction\): it was made by an older petal"):
        request_from_run(tmp_path / "old")


@pytest.mark.parametrize("config", ['[]', '{"recipe": {"name": 5}}', '{"data": "x"}',
                                    '{"recipe": []}', 'not json'])
def test_a_damaged_config_is_refused_on_resume(tmp_path: Path, config: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(config)
    with pytest.raises(PetalError, match="start the run again"):
        request_from_run(tmp_path / "run")


@pytest.mark.parametrize("name", ["resnet9", "timm:resnet18", "squeezenet1_0"])
def test_trunk_trains_at_a_scaled_learning_rate(name: str) -> None:
    network, _ = build_model(name, 3, **({"width": 0.125} if name == "resnet9" else {}))
    head = classifier_head(network)
    assert head.weight.shape[0] == 3  # the fresh 3-way head, not a layer of the trunk
    recipe = get_recipe("original-transfer", ["lr=0.01", "trunk_lr_scale=0.1"])
    groups = parameter_groups(network, recipe.lr, recipe.trunk_lr_scale)
    assert [len(g["params"]) for g in groups] == [2, len(list(network.parameters())) - 2]
    optimizer = build_optimizer(groups, recipe, total_steps=100)["optimizer"]
    peaks = [g["max_lr"] for g in optimizer.param_groups]  # set by OneCycleLR
    assert peaks == pytest.approx([0.01, 0.001])
    with pytest.raises(PetalError, match="trunk_lr_scale"):
        get_recipe("original-transfer", ["trunk_lr_scale=0"])


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
    assert float(rows[1]["elapsed_seconds"]) > float(rows[0]["elapsed_seconds"])
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["classes"] == ["cat", "dog", "fox"]
    assert card["architecture"]["name"] == "resnet9" and card["input"]["size"] == 32
    assert card["split"] == "../split.json" and (run / "model" / card["split"]).is_file()
    assert card["metrics"]["val_acc"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-5)
    assert card["recipe"]["name"] == "original-resnet9" and card["petal_version"]
    assert find_model_folder(run) == run / "model"
    assert _train(image_folder, run) == 1  # the run folder is never overwritten
    assert "--resume" in capsys.readouterr().err


def test_model_folder_round_trip_without_pickle(image_folder: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                tiny_recipe) -> None:
    request = TrainRequest(data=image_folder, recipe=tiny_recipe, out=tmp_path / "run",
                           cache_dir=str(tmp_path / "cache"))
    result = train_model(request, folds=0, progress=False)
    trained = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("model folders never unpickle"))
    model, card = load_model(result.run_dir)
    state = {k.removeprefix("network."): v for k, v in trained["state_dict"].items()}
    reference, _ = load_model(result.model_dir)
    reference.load_state_dict(state)
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(model(images), reference(images))
    assert card.classes == ["cat", "dog", "fox"]


def test_eval_crop_full_validates_and_saves_whole_squares(image_folder: Path, tmp_path: Path,
                                                          tiny_recipe) -> None:
    recipe = dataclasses.replace(tiny_recipe, eval_crop="full")
    request = TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                           cache_dir=str(tmp_path / "cache"))
    result = train_model(request, folds=0, progress=False)
    trained = json.loads((result.run_dir / "config.json").read_text())["input"]
    saved = json.loads((result.model_dir / "model.json").read_text())["input"]
    assert trained["size"] == 32 and trained["resize_size"] == 37  # random 32 px crops of 37
    assert saved["size"] == saved["resize_size"] == 37 and saved["crop_pct"] == 1.0
    classifier = petal.load(result.run_dir)
    photo = sorted((image_folder / "cat").iterdir())[0]
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    square = DecodedCache(tmp_path / "cache", 37).ensure([(photo, digest)], progress=False)[0]
    np.testing.assert_array_equal(classifier.prepare(photo), square)  # nothing cropped away
    metrics = evaluate(EvalRequest(result.run_dir, out=tmp_path / "eval", progress=False,
                                   cache_dir=tmp_path / "cache")).metrics
    assert metrics["accuracy"] == pytest.approx(result.val_acc, abs=1e-5)
    with pytest.raises(PetalError, match="eval_crop.*full mode only"):
        get_recipe("fast-transfer", ["eval_crop=full"])
    with pytest.raises(PetalError, match="eval_crop='middle'"):
        get_recipe("original-transfer", ["eval_crop=middle"])


class _Crash(L.Callback):
    """Stops a run at the start of epoch `at`, as a killed process would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated crash")


def test_resume_gives_the_uninterrupted_history(image_folder: Path, tmp_path: Path,
                                                tiny_recipe) -> None:
    def request(name: str) -> TrainRequest:
        return TrainRequest(data=image_folder, recipe=tiny_recipe, out=tmp_path / name,
                            cache_dir=str(tmp_path / "cache"))

    train_model(request("straight"), folds=0, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(request("crashed"), folds=0, progress=False, callbacks=[_Crash(at=2)])
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet9000"], "unknown model"),
        (["--recipe", "nope"], "unknown recipe"),
        (["--set", "colour=red"], "field=value"),
    ],
)
def test_bad_input_fails_before_training(image_folder: Path, tmp_path: Path, args: list[str],
                                         message: str, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    code = main(["train", "--data", str(image_folder), "--recipe", "original-resnet9", *TINY,
                 "--out", str(run), "--no-progress", "--cache-dir", str(tmp_path / "c"), *args])
    assert code == 1
    assert message in capsys.readouterr().err.lower()
    assert not run.exists()


def test_small_training_set_adapts_the_batch_size(image_folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--recipe", "original-resnet9", *TINY,
                 "--set", "batch_size=64", "--set", "epochs=1", "--folds", "0", "--out",
                 str(run), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "note: 9 training images, fewer than 4 batches of the recipe's 64: training with " \
           "batch size 4" in out
    config = json.loads((run / "config.json").read_text())
    card = json.loads((run / "model" / "model.json").read_text())
    assert config["recipe"]["batch_size"] == card["recipe"]["batch_size"] == 4


@pytest.mark.parametrize(("lr", "message"), [("0.1", "lr '0.1'"), (-1.0, "above 0 up to 10"),
                                             (True, "lr True"), (float("inf"), "lr inf")])
def test_request_lr_is_a_number_or_auto(image_folder: Path, lr: object, message: str) -> None:
    with pytest.raises(PetalError, match=message):
        TrainRequest(data=image_folder, recipe=get_recipe("original-resnet9"), out=Path("x"), lr=lr)
    assert TrainRequest(data=image_folder, recipe=get_recipe("original-resnet9"), out=Path("x"),
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


def test_petal_recipes_lists_every_recipe_with_every_field(capsys: pytest.CaptureFixture
                                                          ) -> None:
    assert main(["recipes"]) == 0
    printed = capsys.readouterr().out
    for recipe in RECIPES.values():
        assert f"{recipe.name}: {recipe.summary}\n" in printed
        line = printed.split(f"{recipe.name}: ", 1)[1].splitlines()[1]
        assert line == "  " + ", ".join(f"{f.name}={getattr(recipe, f.name)}"
                                        for f in dataclasses.fields(recipe)
                                        if f.name not in ("name", "summary"))


def test_a_model_path_of_dot_is_the_folder_it_names(tiny_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    photo = tiny_run.parent / "data" / "cat" / "cat0.jpg"
    for folder in (run, run / "model"):
        done = subprocess.run([Path(sys.executable).with_name("petal"), "predict", ".",
                               str(photo)], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0 and "cat0.jpg" in done.stdout, done.stderr
