"""petal.load without an engine: a model folder runs on ONNX Runtime through its own export,
made once and kept beside the weights; torch where that cannot be (petal.inference.auto_engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import petal
from conftest import write_image
from petal.errors import PetalWarning
from petal.inference.model_folder import ModelCard, model_digest, save_model_folder
from petal.models import architecture_config, build_model


def fresh_copy(run: Path, dest: Path) -> Path:
    """A copy of run folder `run` without any export."""
    shutil.copytree(run, dest)
    for exported in (dest / "model").glob("model.onnx*"):
        exported.unlink()
    return dest


def test_a_folder_runs_on_its_own_export_made_once(tiny_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    photo = write_image(tmp_path / "p.jpg", seed=5)
    classifier = petal.load(run)
    assert classifier.engine == "onnx"
    assert "Exporting" in capsys.readouterr().err
    onnx = run / "model" / "model.onnx"
    made = onnx.stat().st_mtime_ns
    card = json.loads((run / "model" / "model.onnx.json").read_text())
    assert card["export"]["source"] == model_digest(run / "model")
    again = petal.load(run / "model")
    assert again.engine == "onnx" and onnx.stat().st_mtime_ns == made  # not exported again
    assert "Exporting" not in capsys.readouterr().err
    on_torch = petal.load(run, engine="torch")
    assert on_torch.engine == "torch"
    fast, slow = classifier.predict(photo), on_torch.predict(photo)
    assert fast.labels == slow.labels
    assert np.allclose(fast.probabilities, slow.probabilities, atol=1e-5)
    assert fast.novelty == pytest.approx(slow.novelty, abs=1e-4)


def test_a_model_changed_since_its_export_is_exported_again(tiny_run: Path,
                                                            tmp_path: Path) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    petal.load(run)
    card_path = run / "model" / "model.json"
    card = json.loads(card_path.read_text())
    card["classes"] = ["lynx", "dog", "fox"]  # a hand edit: the old graph's card says cat
    card_path.write_text(json.dumps(card))
    classifier = petal.load(run)
    assert classifier.engine == "onnx" and classifier.classes == ["lynx", "dog", "fox"]
    exported = json.loads((run / "model" / "model.onnx.json").read_text())
    assert exported["export"]["source"] == model_digest(run / "model")


def test_an_export_that_cannot_be_kept_leaves_torch_and_says_why(tiny_run: Path,
                                                                tmp_path: Path) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    (run / "model" / "model.onnx").mkdir()  # a folder where the file would go
    with pytest.warns(PetalWarning, match="running on torch, as its ONNX export could not"):
        classifier = petal.load(run)
    assert classifier.engine == "torch"


def test_a_network_explained_by_grad_cam_stays_on_torch(tmp_path: Path) -> None:
    network, spec = build_model("mobilenet_v3_small", 2, weights=None, input_size=64)
    folder = save_model_folder(tmp_path / "model", network.eval(),
                               ModelCard(architecture_config("mobilenet_v3_small", 2, 64),
                                         ["a", "b"], spec))
    assert petal.load(folder).engine == "torch"
    assert petal.load(folder).gradient_maps is not None  # and not exported again: it is current


@pytest.mark.parametrize("name", ["model.safetensors", "novelty.safetensors"])
def test_a_named_pipe_in_the_folder_is_refused_without_hanging(tiny_run: Path, tmp_path: Path,
                                                               name: str) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    (run / "model" / name).unlink()
    os.mkfifo(run / "model" / name)
    code = f"import petal\ntry:\n    petal.load({str(run)!r})\nexcept petal.errors.PetalError " \
           "as e:\n    print('refused:', e)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "refused:" in done.stdout, done.stderr


def test_a_process_without_torch_exports_in_a_child_and_stays_without_it(
        tiny_run: Path, tmp_path: Path) -> None:
    """`petal serve` of a fresh run: the export needs torch (1 GB resident), which the
    serving process must not keep."""
    run = fresh_copy(tiny_run, tmp_path / "run")
    code = (f"import sys, petal\nc = petal.load({str(run)!r})\n"
            "print(c.engine, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.split() == ["onnx", "False"], done.stderr
    assert "Exporting" in done.stderr and (run / "model" / "model.onnx").is_file()
