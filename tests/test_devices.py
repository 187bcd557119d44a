"""Where petal computes: the device inference runs on (petal.inference.device) and the number
format training runs at (petal.training.precision). The suite runs on CPU-only machines: a GPU
is checked by benchmarks/gpu.sh, and here what a user without one sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import petal
from conftest import write_image
from petal.errors import PetalError
from petal.inference.device import describe_device, onnx_providers, resolve_device
from petal.training.precision import cpu_has_fast_bf16, training_precision

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused_clearly() -> None:
    assert resolve_device(None) == resolve_device("auto") == resolve_device("CPU") == "cpu"
    for asked in ("cuda", "cuda:1"):
        with pytest.raises(PetalError, match="no CUDA GPU can be used here"):
            resolve_device(asked)
    for nonsense in ("tpu", "cuda:x", "cuda:-1", "", " cpu"):
        with pytest.raises(PetalError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(nonsense)
    for odd in (0, 1.5):
        with pytest.raises(PetalError, match="give a string"):
            resolve_device(odd)
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    assert describe_device("cpu") == "CPU"


@no_gpu
def test_predict_says_why_it_cannot_use_a_gpu_and_runs_on_the_cpu(tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    photo = write_image(tmp_path / "p.jpg", seed=3)
    petal_cli = [str(Path(sys.executable).with_name("petal"))]
    refused = subprocess.run([*petal_cli, "predict", str(tiny_run), str(photo),
                              "--device", "cuda"], capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "no CUDA GPU can be used here" in refused.stderr and not refused.stdout
    done = subprocess.run([*petal_cli, "predict", str(tiny_run), str(photo), "--device", "cpu"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "p.jpg" in done.stdout and "GPU" not in done.stderr
    assert petal.load(tiny_run, device="cpu").device == "cpu"


def test_auto_precision_is_bf16_only_for_images_on_hardware_made_for_it() -> None:
    fast_cpu = "bf16-mixed" if cpu_has_fast_bf16() else "32-true"
    assert training_precision("auto", "cpu", images_in=True) == fast_cpu
    assert training_precision("auto", "cpu", images_in=False) == "32-true"  # cached features
    for asked in ("32-true", "bf16-mixed", "64-true"):
        assert training_precision(asked, "cpu", images_in=True) == asked
    with pytest.raises(PetalError, match="16-mixed needs a GPU"):
        training_precision("16-mixed", "cpu", images_in=True)
    if not torch.cuda.is_available():
        assert training_precision("auto", "auto", images_in=True) == fast_cpu


def test_bf16_training_saves_float32_weights_that_predict(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    from petal.training.fit import TrainerOptions, TrainRequest
    from petal.training.orchestrator import train_model
    from petal.training.recipes import get_recipe

    for c, label in enumerate(["cat", "dog"]):
        for i in range(8):
            write_image(tmp_path / "data" / label / f"{label}{i}.jpg", seed=10 * c + i)
    recipe = get_recipe("fast-resnet9", ["width=0.125", "input_size=32", "batch_size=4",
                                         "epochs=1"])
    result = train_model(TrainRequest(data=tmp_path / "data", recipe=recipe,
                                      out=tmp_path / "run", cache_dir=str(tmp_path / "cache"),
                                      trainer=TrainerOptions(precision="bf16-mixed")),
                         folds=0, progress=False)
    said = capsys.readouterr().out
    assert "Training on CPU" in said and "bfloat16 mixed precision" in said
    with safe_open(str(result.model_dir / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes <= {"F32", "I64"}, dtypes
    prediction = petal.load(result.run_dir).predict(tmp_path / "data" / "cat" / "cat0.jpg")
    assert prediction.label in {"cat", "dog"} and 0 < prediction.probability <= 1


def test_auto_picks_a_gpu_only_for_an_engine_that_can_drive_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision, on a machine with a GPU that torch drives and ONNX Runtime (no
    onnxruntime-gpu) cannot: the probes are replaced, as this machine has no GPU."""
    from petal.inference import device

    monkeypatch.setattr(device, "driver_sees_gpu", lambda: True)
    monkeypatch.setattr(device, "torch_has_cuda", lambda: True)
    monkeypatch.setattr(device, "onnx_has_cuda", lambda: False)
    assert resolve_device("auto") == resolve_device("auto", "torch") == "cuda:0"
    assert resolve_device("auto", "onnx") == "cpu"  # an .onnx file stays on the CPU
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(PetalError, match="install onnxruntime-gpu"):
        onnx_providers("cuda:0")
    monkeypatch.setattr(device, "driver_sees_gpu", lambda: False)
    assert resolve_device("auto") == "cpu"
