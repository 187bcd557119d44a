"""Open set: the novelty score, its threshold, and "unknown" wherever a prediction is shown."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import petal
from petal.analysis.metrics import open_set_metrics
from petal.cli import main
from petal.errors import PetalError
from petal.inference import novelty
from petal.inference.export import export

RNG = np.random.default_rng(0)


def test_a_far_point_scores_above_the_known_ones() -> None:
    centres = [np.eye(8)[0] * 3, np.eye(8)[1] * 3]
    features = np.concatenate([c + 0.05 * RNG.standard_normal((50, 8)) for c in centres])
    fitted = novelty.fit(features, features)
    far = np.full((5, 8), 1.5)  # between and off both clusters
    assert fitted.score(far).min() > np.quantile(fitted.score(features), 0.95)
    assert (fitted.val_scores <= fitted.threshold).mean() >= 0.95
    with pytest.raises(PetalError, match="width"):
        fitted.score(np.zeros((1, 7)))


def test_threshold_keeps_the_asked_share_and_moves_without_refitting() -> None:
    scores = np.arange(100, dtype=np.float32)
    fitted = novelty.Novelty(np.eye(2, dtype=np.float32), scores)
    assert fitted.threshold == 95.0 and (scores <= fitted.threshold).mean() == 0.96
    assert fitted.keeping(0.5).threshold == 50.0 and fitted.threshold == 95.0
    assert fitted.keeping(1.0).threshold == 99.0
    for bad in (0, 1.5, -0.1, True, "0.9"):
        with pytest.raises(PetalError, match="keep"):
            fitted.keeping(bad)


def test_knn_is_the_distance_to_the_kth_neighbour() -> None:
    reference = novelty.l2_normalised(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    query = np.array([[2.0, 0.0]])
    assert novelty.knn_distance(query, reference, 1) == pytest.approx([0.0], abs=1e-6)
    assert novelty.knn_distance(query, reference, 2) == pytest.approx([np.sqrt(2)])
    assert novelty.knn_distance(query, reference, 9) == pytest.approx([2.0])  # k capped


def test_open_set_metrics() -> None:
    known, unknown = np.arange(100.0), np.array([50.0, 96.5, 200.0, 300.0])
    right = np.arange(100) % 2 == 0
    metrics = open_set_metrics(known, unknown, threshold=95.0, right=right)
    assert metrics["fpr95"] == 0.25  # 50 is kept at the 95 % threshold (95)
    assert metrics["known_kept"] == 0.96 and metrics["unknown_rejected"] == 0.75
    assert metrics["auroc"] == pytest.approx((0.505 + 0.97 + 1 + 1) / 4)  # 50 ties one known
    assert metrics["accuracy_kept"] == pytest.approx(48 / 96)


# --- a model trained on two colours must flag a third (conftest.colour_run) -------------------

def test_two_colours_flag_a_third(colour_run: Path) -> None:
    classifier = petal.load(colour_run)
    card = json.loads((colour_run / "model" / "model.json").read_text())
    assert card["novelty"]["method"] == "knn" and card["novelty"]["keep"] == 0.95
    green = sorted((colour_run.parent / "other" / "green").iterdir())
    red = sorted((colour_run.parent / "data" / "red").iterdir())
    assert all(p.unknown for p in classifier.predict(green))
    known = classifier.predict(red)
    assert sum(p.unknown for p in known) <= 2 and all(p.novelty is not None for p in known)
    assert not any(p.unknown for p in classifier.keeping(None).predict(green))


def test_onnx_gives_the_same_novelty_as_torch(colour_run: Path, tmp_path: Path) -> None:
    onnx_path = export(colour_run, out=tmp_path / "colours.onnx").path
    photos = sorted((colour_run.parent / "other" / "green").iterdir()) + sorted(
        (colour_run.parent / "data" / "blue").iterdir())[:4]
    torch_answers = petal.load(colour_run).predict(photos)
    onnx_answers = petal.load(onnx_path).predict(photos)
    for ours, theirs in zip(torch_answers, onnx_answers, strict=True):
        assert ours.unknown == theirs.unknown
        assert ours.novelty == pytest.approx(theirs.novelty, abs=1e-4)


def test_predict_cli_says_unknown_everywhere(colour_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    green = colour_run.parent / "other" / "green"
    assert main(["predict", str(colour_run), str(green / "0.png")]) == 0
    out = capsys.readouterr().out
    assert "unknown (among its classes: " in out and "(1 unknown)" in out
    assert main(["predict", str(colour_run), str(green / "0.png"), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]
    assert answer["unknown"] is True and answer["novelty"] > 0
    assert main(["predict", str(colour_run), str(green / "0.png"), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["unknown"] == "true" and float(rows[0]["novelty"]) == answer["novelty"]
    assert main(["predict", str(colour_run), str(green / "0.png"), "--no-reject"]) == 0
    assert "(0 unknown)" in capsys.readouterr().out
    assert main(["predict", str(colour_run), str(green / "0.png"), "--keep-known", "1.5"]) == 1
    assert "keep 1.5" in capsys.readouterr().err
    figure = tmp_path / "figure.png"
    assert main(["predict", str(colour_run), str(green), "--figure", str(figure)]) == 0
    assert figure.stat().st_size > 5000
    assert main(["compare", str(green / "0.png"), "--models", str(colour_run), "--out",
                 str(tmp_path / "compare.png")]) == 0
    assert "unknown; among its classes:" in capsys.readouterr().out


def test_evaluate_unknown(colour_run: Path, capsys: pytest.CaptureFixture) -> None:
    other = colour_run.parent / "other"
    assert main(["evaluate", str(colour_run), "--unknown", str(other), "--json",
                 "--include-training", "--cache-dir", str(colour_run.parent / "cache")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    open_set = metrics["open_set"]
    assert open_set["n_unknown"] == 6 and open_set["auroc"] > 0.9
    assert open_set["unknown_rejected"] == 1.0
    assert {"fpr95", "known_kept", "accuracy_kept", "threshold"} <= open_set.keys()
    assert (Path(metrics["out"]) / "novelty.png").stat().st_size > 10_000


# --- hostile model folders -------------------------------------------------------------------

def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy / "model"


@pytest.mark.parametrize("case", ["missing", "not safetensors", "wrong tensors", "wide",
                                  "named pipe", "too large", "bad settings", "card not object"])
def test_damaged_novelty_is_refused(colour_run: Path, tmp_path: Path, case: str) -> None:
    model = _copy(colour_run, tmp_path)
    scores, card_path = model / novelty.NOVELTY_FILE, model / "model.json"
    card = json.loads(card_path.read_text())
    if case == "missing":
        scores.unlink()
    elif case == "not safetensors":
        scores.write_bytes(b"\x00" * 64)
    elif case == "wrong tensors":
        save_file({"payload": np.zeros(3, np.float32)}, str(scores))
    elif case == "wide":
        save_file({"reference": np.zeros((4, 7), np.float16),
                   "val_scores": np.zeros(3, np.float32)}, str(scores))
    elif case == "named pipe":
        scores.unlink()
        os.mkfifo(scores)
    elif case == "too large":
        with open(scores, "r+b") as handle:
            handle.truncate(novelty.MAX_FILE_BYTES + 1)
    elif case == "bad settings":
        card["novelty"]["method"] = "oracle"
    else:
        card["novelty"] = ["knn"]
    card_path.write_text(json.dumps(card))
    if card["novelty"] == ["knn"] or case == "bad settings":
        with pytest.raises(PetalError, match="novelty"):
            petal.load(model)
        return
    with pytest.raises(PetalError):
        classifier = petal.load(model)
        classifier.predict(np.zeros((40, 40, 3), np.uint8))


@pytest.mark.parametrize(("name", "width"), [("resnet9", 128), ("efficientnet_lite0", 1280),
                                             ("resnet18", 512), ("squeezenet1_0", 512),
                                             ("timm:resnet10t", 512)])
def test_every_family_gives_the_heads_input_as_features(name: str, width: int) -> None:
    import torch

    from petal.models import build_model
    from petal.models.features import AnswerWithFeatures

    options = {"width": 0.25} if name == "resnet9" else {}
    network, spec = build_model(name, 3, weights=None, input_size=64, **options)
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        logits, features = AnswerWithFeatures(network.eval(), spec)(images)
        mirrored = AnswerWithFeatures(network, dataclasses.replace(spec, mirror=True))
        _, mirror_features = mirrored(images)
        assert torch.equal(logits, network(images))
    assert features.shape == (2, width)
    torch.testing.assert_close(mirror_features, features)  # the image's own, not its mirror's


@pytest.mark.parametrize("case", ["NaN reference", "NaN validation scores",
                                  "reference not normalised", "k past the reference",
                                  "three-row reference"])
def test_crafted_novelty_arrays_are_refused(colour_run: Path, tmp_path: Path, case: str) -> None:
    """Arrays that load but cannot be what petal wrote: a NaN made every score NaN (invalid
    JSON, never unknown) or flipped the threshold; a k past the reference made every photo
    unknown."""
    model = _copy(colour_run, tmp_path)
    scores, card_path = model / novelty.NOVELTY_FILE, model / "model.json"
    tensors = load_file(str(scores))
    card = json.loads(card_path.read_text())
    if case == "NaN reference":
        tensors["reference"][0, 0] = np.nan
    elif case == "NaN validation scores":
        tensors["val_scores"][:] = np.nan
    elif case == "reference not normalised":
        tensors["reference"] *= 3
    elif case == "k past the reference":
        card["novelty"]["k"] = 100_000
    else:
        tensors["reference"] = tensors["reference"][:3]
    save_file(tensors, str(scores))
    card_path.write_text(json.dumps(card))
    with pytest.raises(PetalError, match="novelty score petal wrote|do not belong together"):
        petal.load(model).predict(np.zeros((40, 40, 3), np.uint8))


def test_fewer_training_images_than_k_keep_a_usable_k() -> None:
    rng = np.random.default_rng(0)
    score = novelty.fit(rng.normal(size=(4, 8)), rng.normal(size=(3, 8)))
    assert score.k == 4


def test_an_onnx_card_with_a_crafted_k_is_refused(colour_run: Path, tmp_path: Path) -> None:
    import onnx

    path = export(colour_run, out=tmp_path / "colours.onnx").path
    proto = onnx.load(str(path))
    card_entry = next(p for p in proto.metadata_props if p.key == "petal.card")
    card = json.loads(card_entry.value)
    card["novelty"]["k"] = 10**6
    card_entry.value = json.dumps(card)
    onnx.save(proto, str(path))
    with pytest.raises(PetalError, match="k = 1000000 nearest"):
        petal.load(path).predict(np.zeros((40, 40, 3), np.uint8))
