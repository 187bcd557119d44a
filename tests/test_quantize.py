"""`petal export --quantize`: an int8 ONNX copy, calibrated on the run's training photos or a
folder, loaded and evaluated like the float32 export (petal.inference.quantize)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import petal
from conftest import write_image
from petal.cli import main
from petal.errors import PetalError, PetalWarning
from petal.inference.export import export


@pytest.fixture
def run_copy(flowers_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(flowers_run, tmp_path / "run"))


def test_int8_export_of_real_photos_answers_as_float32_does(run_copy: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    assert main(["export", str(run_copy), "--quantize"]) == 0
    said = capsys.readouterr().out
    int8 = run_copy / "model" / "model.int8.onnx"
    assert f"Exported int8 ONNX: {int8}" in said and "calibration photos" in said
    card = json.loads((run_copy / "model" / "model.int8.onnx.json").read_text())
    quantized = card["export"]["quantized"]
    assert quantized["calibration_photos"] >= 10 and quantized["unusable_skipped"] == 0
    assert (run_copy / "model" / "model.int8.onnx.novelty.safetensors").is_file()
    assert int8.stat().st_size < 0.5 * (run_copy / "model" / "model.safetensors").stat().st_size

    small, full = petal.load(int8), petal.load(run_copy)  # its float32 export, made here
    assert small.engine == "onnx" and small.classes == full.classes
    photos = sorted((Path(json.loads((run_copy / "config.json").read_text())["data"])
                     ).rglob("*.jpg"))[::10]
    arrays = np.stack([full.prepare(p) for p in photos])
    agree = (small.answer(arrays).probabilities.argmax(1)
             == full.answer(arrays).probabilities.argmax(1)).mean()
    assert agree >= 0.9, agree

    assert main(["evaluate", str(int8), "--no-progress"]) == 0
    metrics = json.loads((run_copy / "eval-model.int8" / "metrics.json").read_text())
    assert metrics["model"] == str(int8.resolve()) and metrics["n_images"] > 0
    assert not (run_copy / "eval").exists()  # the float32 model's evaluation is its own


def test_a_model_folder_alone_needs_calibration_photos(tiny_run: Path, tmp_path: Path) -> None:
    alone = Path(shutil.copytree(tiny_run / "model", tmp_path / "model"))
    with pytest.raises(PetalError, match="--calibration FOLDER"):
        export(alone, quantize=True)
    photos = tmp_path / "photos"
    for i in range(12):
        write_image(photos / f"{i}.jpg", seed=i)
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    os.mkfifo(photos / "pipe.jpg")  # must be skipped, not read forever
    result = export(alone, quantize=True, calibration=photos)
    assert result.path == alone / "model.int8.onnx" and result.agreement[1] == 12
    card = json.loads((alone / "model.int8.onnx.json").read_text())
    assert card["export"]["quantized"]["unusable_skipped"] == 3
    assert petal.load(result.path).predict(photos / "0.jpg").label in {"cat", "dog", "fox"}


def test_bad_quantize_requests_are_refused_clearly(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(PetalError, match="apply to ONNX only"):
        export(tiny_run, fmt="torchscript", quantize=True)
    with pytest.raises(PetalError, match="give both"):
        export(tiny_run, calibration=tmp_path)
    with pytest.raises(PetalError, match="not a folder"):
        export(tiny_run, quantize=True, calibration=tmp_path / "missing")
    few = tmp_path / "few"
    for i in range(3):
        write_image(few / f"{i}.jpg", seed=i)
    with pytest.raises(PetalError, match="only 3 usable calibration photos"):
        export(tiny_run, quantize=True, calibration=few, out=tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_stale_or_loose_int8_file_and_a_moved_data_set(tiny_run: Path, tmp_path: Path,
                                                         flowers_run: Path) -> None:
    run = Path(shutil.copytree(flowers_run, tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    data = Path(config["data"])
    (run / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    with pytest.raises(PetalError, match="no longer at .*gone: give --calibration"):
        export(run, quantize=True)
    with pytest.raises(PetalError, match="not a folder"):
        (tmp_path / "afile").write_text("x")
        export(run, quantize=True, calibration=data, out=tmp_path / "afile" / "q.onnx")

    loose = export(run, quantize=True, calibration=data, out=tmp_path / "loose" / "q.onnx").path
    assert not list(run.rglob("tmp*")) and not list((tmp_path / "loose").glob("tmp*"))
    assert main(["evaluate", str(loose), "--data", str(data), "--no-progress"]) == 0
    assert len(list((tmp_path / "loose").glob("eval-q*/metrics.json"))) == 1

    int8 = export(run, quantize=True, calibration=data).path
    shutil.copy(tiny_run / "model" / "model.safetensors", run / "model" / "model.safetensors")
    with pytest.warns(PetalWarning, match="exported from an earlier state"):
        petal.load(int8)
