"""Export to ONNX and TorchScript: files, model cards, and parity with torch on real photos.

Parity is measured as the max absolute difference of the logits (before softmax), which
must stay under 1e-4, at batch size 1 and at a larger batch (the batch axis is dynamic).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import petal
from petal.cli import main
from petal.errors import PetalError, PetalWarning
from petal.inference.export import export
from petal.inference.model_folder import ModelCard, load_model, save_model_folder
from petal.inference.onnx_engine import CARD_KEY, FILE_DIGEST, NOVELTY_DIGEST, novelty_path
from petal.inference.preprocess import to_input
from petal.models import architecture_config, build_model

TOLERANCE = 1e-4


def sample_photos(folder: Path, count: int) -> list[Path]:
    """`count` photos spread over every class folder of `folder`."""
    photos = sorted(folder.rglob("*.jpg"))
    return photos[:: max(1, len(photos) // count)][:count]


def logits_both_ways(model_path: Path, onnx_path: Path, photos: list[Path]) -> tuple:
    """Logits of torch (divided by the card's temperature, as the export divides them) and of
    ONNX Runtime on the same preprocessed real photos."""
    model, card = load_model(model_path)
    classifier = petal.load(onnx_path)
    batch = to_input(np.stack([classifier.prepare(photo) for photo in photos]), card.input)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch)).numpy() / card.temperature
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return expected, session.run(None, {"input": batch})[0]


@pytest.fixture(scope="module")
def tiny_onnx(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(tiny_run, out=tmp_path_factory.mktemp("export") / "tiny.onnx").path


@pytest.fixture(scope="module")
def flowers_onnx(flowers_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(flowers_run, out=tmp_path_factory.mktemp("export") / "flowers.onnx").path


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_matches_torch_on_real_photos(flowers_run: Path, flowers_onnx: Path,
                                           batch: int) -> None:
    photos = sample_photos(flowers_run.parent / "data", batch)
    expected, actual = logits_both_ways(flowers_run, flowers_onnx, photos)
    assert actual.shape == (batch, 5)
    assert np.abs(actual - expected).max() < TOLERANCE


@pytest.mark.parametrize("batch", [1, 5])
def test_tiny_onnx_matches_torch(tiny_run: Path, tiny_onnx: Path, flowers: Path,
                                 batch: int) -> None:
    photos = (sample_photos(flowers, 2) + sample_photos(tiny_run.parent / "data", 3))[:batch]
    expected, actual = logits_both_ways(tiny_run, tiny_onnx, photos)
    assert np.abs(actual - expected).max() < TOLERANCE


def test_predict_same_with_either_engine(flowers_run: Path, flowers_onnx: Path) -> None:
    photos = sample_photos(flowers_run.parent / "data", 6)
    by_torch = petal.load(flowers_run).predict(photos, top_k=5)
    by_onnx = petal.load(flowers_onnx, engine="onnx").predict(photos, top_k=5)
    for a, b in zip(by_torch, by_onnx):
        assert a.labels == b.labels
        assert np.allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_efficientnet_lite_same_padding(tmp_path: Path, flowers: Path) -> None:
    """tf_efficientnet_lite0 pads 'same' from the input shape; the export must match torch."""
    model, spec = build_model("efficientnet_lite0", 5)
    card = ModelCard(architecture=architecture_config("efficientnet_lite0", 5),
                     classes=list("abcde"), input=spec)
    save_model_folder(tmp_path / "model", model, card)
    result = export(tmp_path / "model", out=tmp_path / "lite0.onnx")
    assert result.max_abs_diff < TOLERANCE  # random batch of 2, checked by export itself
    expected, actual = logits_both_ways(tmp_path / "model", result.path,
                                        sample_photos(flowers, 3))
    assert np.abs(actual - expected).max() < TOLERANCE
    one_expected, one_actual = logits_both_ways(tmp_path / "model", result.path,
                                                sample_photos(flowers, 1))
    assert np.abs(one_actual - one_expected).max() < TOLERANCE


def test_card_in_metadata_and_sidecar(tiny_run: Path, tiny_onnx: Path) -> None:
    card = load_model(tiny_run)[1]
    proto = onnx.load(str(tiny_onnx))
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    embedded = json.loads(metadata[CARD_KEY])
    assert json.loads(metadata["classes"]) == card.classes == ["cat", "dog", "fox"]
    assert json.loads(metadata["input_spec"]) == card.input.to_json()
    assert embedded["export"]["input"]["shape"] == ["N", 3, 32, 32]
    sidecar = json.loads(tiny_onnx.with_name("tiny.onnx.json").read_text())
    # the card beside the file binds it and its novelty file by their digests
    digests = {FILE_DIGEST: hashlib.sha256(tiny_onnx.read_bytes()).hexdigest(),
               NOVELTY_DIGEST: hashlib.sha256(novelty_path(tiny_onnx).read_bytes()).hexdigest()}
    assert sidecar == {**embedded, "export": {**embedded["export"], **digests}}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == "input" and dims[0].dim_param  # symbolic batch axis
    classifier = petal.load(tiny_onnx)
    assert classifier.engine == "onnx"
    assert classifier.classes == card.classes and classifier.spec == card.input
    assert classifier.card.metrics == card.metrics


def test_card_from_sidecar_when_metadata_stripped(tiny_onnx: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    stripped = tmp_path / "stripped.onnx"
    onnx.save(proto, str(stripped))
    with pytest.raises(PetalError, match="no petal model card"):
        petal.load(stripped)
    shutil.copy(tiny_onnx.with_name("tiny.onnx.json"), tmp_path / "stripped.onnx.json")
    with pytest.warns(PetalWarning, match="will not be called unknown"):
        assert petal.load(stripped).novelty is None  # its novelty file was not copied
    shutil.copy(tiny_onnx.with_name("tiny.onnx.novelty.safetensors"),
                tmp_path / "stripped.onnx.novelty.safetensors")
    assert petal.load(stripped).classes == ["cat", "dog", "fox"]


@pytest.mark.parametrize("edit", ["fewer classes", "other input size"])
def test_card_that_contradicts_the_graph_is_refused(tiny_onnx: Path, tmp_path: Path,
                                                    edit: str) -> None:
    """A card edited to fewer classes (and outputs) or another input size than the graph has."""
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "edited.onnx"))
    card = json.loads(tiny_onnx.with_name("tiny.onnx.json").read_text())
    if edit == "fewer classes":
        card["classes"] = card["classes"][:-1]
        card["architecture"]["num_classes"] = len(card["classes"])
    else:
        card["input"]["size"] = 64
    (tmp_path / "edited.onnx.json").write_text(json.dumps(card))
    with pytest.raises(PetalError, match="does not fit its card"):
        petal.load(tmp_path / "edited.onnx")


def test_default_path_inside_model_folder(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "model", run / "model",
                    ignore=shutil.ignore_patterns("model.onnx*"))  # loading may have made it
    with pytest.raises(PetalError, match="petal export"):
        petal.load(run, engine="onnx")
    result = export(run)
    assert result.path == run / "model" / "model.onnx"
    assert result.sidecar == run / "model" / "model.onnx.json"
    assert not list((run / "model").glob(".*.tmp"))  # written atomically, nothing left over
    assert petal.load(run, engine="onnx").engine == "onnx"
    assert petal.load(run / "model", engine="onnx").classes == ["cat", "dog", "fox"]


NO_TORCH_CALLS = {
    "petal.load": "print(petal.load({model!r}).predict({photo!r}).label)",
    "petal predict": "main(['predict', {model!r}, {photo!r}, '--engine', 'onnx', '--json'])",
}


@pytest.mark.parametrize("call", NO_TORCH_CALLS)
def test_onnx_path_imports_no_torch(tiny_onnx: Path, tiny_run: Path, call: str) -> None:
    photo = sample_photos(tiny_run.parent / "data", 1)[0]
    code = ("import sys, petal\nfrom petal.cli import main\n"
            + NO_TORCH_CALLS[call].format(model=str(tiny_onnx), photo=str(photo))
            + "\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert any(label in done.stdout for label in ("cat", "dog", "fox"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript(tiny_run: Path, tmp_path: Path) -> None:
    result = export(tiny_run, fmt="torchscript", out=tmp_path / "tiny.pt")
    files = {"model.json": ""}
    module = torch.jit.load(io.BytesIO(result.path.read_bytes()), _extra_files=files)
    assert json.loads(files["model.json"])["classes"] == ["cat", "dog", "fox"]
    assert json.loads(result.sidecar.read_text())["export"]["format"] == "torchscript"
    model, card = load_model(tiny_run)
    batch = torch.randn(3, 3, card.input.size, card.input.size)
    with torch.inference_mode():
        logits, features, maps = module(batch)
        assert (logits - model(batch) / card.temperature).abs().max() < TOLERANCE
        assert features.shape == (3, model.classifier[-1].in_features)
        assert maps.shape[:2] == (3, 3)  # a class activation map per class


def test_cli_export_with_opset(tiny_run: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tiny17.onnx"
    assert main(["export", str(tiny_run), "--out", str(out), "--opset", "17"]) == 0
    assert "Exported onnx" in capsys.readouterr().out
    opsets = {entry.domain: entry.version for entry in onnx.load(str(out)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == 17
    assert json.loads(out.with_name("tiny17.onnx.json").read_text())["export"]["opset"] == 17


def test_errors(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(PetalError, match="unknown export format"):
        export(tiny_run, fmt="tflite")
    with pytest.raises(PetalError, match="ONNX only"):
        export(tiny_run, fmt="torchscript", opset=17)
    with pytest.raises(PetalError, match="does not exist"):
        petal.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(PetalError, match="cannot load"):
        petal.load(tmp_path / "junk.onnx")
    assert main(["export", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
