"""petal vs fastai, each tool's standard recipe: same machine, split, network, weights.

What it measures, in one run on one machine (the reference: 2 CPU cores, no GPU):
  --task transfer (default)
    fastai  `learn.fine_tune(2, freeze_epochs=1)` on EfficientNet-Lite0 (timm
            tf_efficientnet_lite0) at 224 px: fastbook's presizing, Resize(460) then
            aug_transforms(size=224, min_scale=0.75), batch size 64, num_workers = cores
            (see fastai_worker.py). Runs in its own virtual environment.
    petal   `petal train --recipe fast-transfer` (the same ImageNet weights, 224 px, the
            trunk run once on ONNX Runtime and cached, the top trained), cold cache.
  --task scratch
    fastai  `Learner(dls, ResNet9)` + `learn.fit_one_cycle(5, 3e-3)` (fastbook's
            from-scratch baseline) on the original ResNet9 at 64 px, Resize(128) then
            aug_transforms(size=64, min_scale=0.75), ImageNet normalisation, batch 64.
    petal   `petal train --recipe fast-resnet9`, cold cache.
Both train on petal's seed-0 split of the flowers set (3884 / 431 with the full set) and
validate on the same images. Times are wall-clock seconds from the moment this script
launches the tool's process: interpreter start, imports, data loading and decoding
included (fastai stamps each epoch's end with CLOCK_MONOTONIC; petal's history.csv
counts from its `main()`, whose start is stamped the same way and added). Installing
fastai is not counted. The speed-up is fastai's time to first reach its own final
validation accuracy over petal's time to first reach the same number of correct
validation images. Both runs read the photos once beforehand, so neither pays for a
cold page cache. Each task takes about 40 minutes on 2 cores:

    .venv/bin/python benchmarks/vs_fastai.py --json benchmarks/results/vs_fastai.json
    .venv/bin/python benchmarks/vs_fastai.py --task scratch \
        --json benchmarks/results/vs_fastai_scratch.json

and a smoke test on a linked slice of 15 photos per class (minutes):

    .venv/bin/python benchmarks/vs_fastai.py --per-class 15 --fastai-epochs 1 \
        --freeze-epochs 1 --petal-set epochs=2

fastai, fastcore, timm, torch and torchvision go into `.cache/fastai-venv` (git-ignored;
made on first use, reused after), with torch, torchvision and timm pinned to the
versions of petal's environment, so both tools run the same kernels and network code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from common import FLOWERS, PETAL, ROOT, linked, record

from petal.run_folder import CONFIG_FILE, read_history

VENV = ROOT / ".cache" / "fastai-venv"
WORKER = Path(__file__).with_name("fastai_worker.py")
PETAL_RECIPE = {"transfer": "fast-transfer", "scratch": "fast-resnet9"}
FASTAI_BATCH = 64
# `petal train`, with its main()'s start stamped on CLOCK_MONOTONIC just before it runs.
PETAL_SHIM = ("import sys, time; from petal.cli import main; "
              "print(f'petal-main-clock {time.clock_gettime(time.CLOCK_MONOTONIC)!r}', "
              "flush=True); sys.exit(main())")


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def requirements() -> list[str]:
    """fastai 2.8, with torch, torchvision and timm at the versions petal runs on."""
    return ["fastai>=2.8,<2.9", *(f"{p}=={version(p)}" for p in ("torch", "torchvision", "timm"))]


def ensure_fastai_venv(venv: Path) -> float:
    """Create `venv` and install fastai into it unless it already holds these requirements;
    returns the seconds spent (0 when reused)."""
    marker = venv / "petal-requirements.txt"
    wanted = "\n".join(requirements()) + "\n"
    if marker.is_file() and marker.read_text() == wanted:
        return 0.0
    print(f"Installing {' '.join(requirements())} into {venv} ...", flush=True)
    start = time.perf_counter()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--progress-bar", "off", *requirements()], check=True)
    marker.write_text(wanted)
    seconds = time.perf_counter() - start
    print(f"fastai installed in {seconds:.0f} s (not counted in any timing)", flush=True)
    return seconds


def make_split(data: Path, out: Path) -> Path:
    subprocess.run([str(PETAL), "data", "split", str(data), "--seed", "0", "--out", str(out)],
                   check=True)
    return out


def export_weights(path: Path) -> Path:
    """petal's offline ImageNet EfficientNet-Lite0, 1000-class head kept, in timm's layout."""
    from safetensors.torch import save_file

    from petal.models import build_model

    model, _ = build_model("efficientnet_lite0", 1000, weights="imagenet")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def read_photos(data: Path, split: dict) -> None:
    """Read every photo of the split once, so both tools find them in the page cache."""
    for item in split["train"] + split["val"]:
        (data / item["path"]).read_bytes()


def stream(command: list[str], prefix: str, env: dict[str, str] | None = None) -> list[str]:
    """Run `command`, echoing its output lines with `prefix`; returns them. Fails loudly."""
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as process:
        for line in process.stdout:
            print(f"{prefix} {line}", end="", flush=True)
            lines.append(line)
    if process.returncode:
        raise SystemExit(f"{prefix} failed (exit {process.returncode}): {' '.join(command)}")
    return lines


@dataclass
class Epoch:
    epoch: int
    val_acc: float
    seconds: float  # from the launch of the tool's process to the end of this epoch


@dataclass
class ToolRun:
    tool: str
    recipe: str
    epochs: list[Epoch]
    start_offset: float  # launch -> the tool's own clock starts (interpreter, imports)
    wall_seconds: float  # launch -> process exit
    details: dict


def run_fastai(task: str, data: Path, split: Path, weights: Path | None, out: Path,
               epochs: int | None, freeze_epochs: int) -> ToolRun:
    result = out / "fastai.json"
    command = [str(VENV / "bin" / "python"), str(WORKER), "--task", task, "--data", str(data),
               "--split", str(split), "--json", str(result), "--freeze-epochs",
               str(freeze_epochs), "--batch-size", str(FASTAI_BATCH), "--workers",
               str(len(os.sched_getaffinity(0)))]
    command += ["--weights", str(weights)] if weights else []
    command += ["--epochs", str(epochs)] if epochs else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    launched = now()
    stream(command, "[fastai]", env)
    wall = now() - launched
    report = json.loads(result.read_text())
    rows = [Epoch(r["epoch"], r["val_acc"], r["clock"] - launched) for r in report.pop("epochs")]
    recipe = report["recipe"]["call"]
    return ToolRun("fastai", recipe, rows, report["started_clock"] - launched, wall, report)


def run_petal(recipe: str, data: Path, split: Path, out: Path, overrides: list[str]) -> ToolRun:
    run = out / "petal-run"
    with tempfile.TemporaryDirectory(prefix="petal-vs-fastai-cache-") as cache:  # cold
        command = [sys.executable, "-c", PETAL_SHIM, "train", "--data", str(data), "--recipe",
                   recipe, "--split", str(split), "--out", str(run), "--cache-dir", cache,
                   "--no-progress", *(x for o in overrides for x in ("--set", o))]
        launched = now()
        lines = stream(command, "[petal]")
        wall = now() - launched
    stamp = next(float(line.split()[1]) for line in lines if line.startswith("petal-main-clock"))
    offset = stamp - launched
    history = read_history(run / "history.csv")
    rows = [Epoch(int(r["epoch"]), r["val_acc"], offset + r["elapsed_seconds"]) for r in history]
    config = json.loads((run / CONFIG_FILE).read_text())
    return ToolRun("petal", recipe, rows, offset, wall,
                   {"run": str(run), "recipe": config["recipe"], "history": history})


def first_reaching(run: ToolRun, correct: int, n_val: int) -> Epoch | None:
    """The first epoch with at least `correct` right validation images."""
    return next((e for e in run.epochs if round(e.val_acc * n_val) >= correct), None)


def compare(fastai: ToolRun, petal: ToolRun, n_val: int) -> dict:
    """The common accuracy (fastai's final one), each tool's time to it, and the speed-up."""
    correct = round(fastai.epochs[-1].val_acc * n_val)
    reached = {run.tool: first_reaching(run, correct, n_val) for run in (fastai, petal)}
    petal_time = reached["petal"].seconds if reached["petal"] else None
    return {
        "common_accuracy": correct / n_val,
        "common_correct": correct,
        "n_val": n_val,
        "seconds_to_common": {tool: e.seconds if e else None for tool, e in reached.items()},
        "epoch_reaching_common": {tool: e.epoch if e else None for tool, e in reached.items()},
        "speedup": reached["fastai"].seconds / petal_time if petal_time else None,
    }


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def print_table(runs: list[ToolRun], comparison: dict) -> None:
    common = comparison["common_accuracy"]
    print(f"\n{'tool':<7} {'recipe':<36} {'epochs':>6} {'final acc':>9} {'time to final':>13} "
          f"{f'time to {common:.4f}':>16}")
    for run in runs:
        last = run.epochs[-1]
        to_common = comparison["seconds_to_common"][run.tool]
        print(f"{run.tool:<7} {run.recipe:<36} {last.epoch:>6} {last.val_acc:>9.4f} "
              f"{_seconds(last.seconds):>13} {_seconds(to_common):>16}")
    if comparison["speedup"]:
        print(f"speed-up to fastai's final accuracy ({comparison['common_correct']}/"
              f"{comparison['n_val']} correct): {comparison['speedup']:.1f}x")
    else:
        petal = runs[1].epochs[-1]
        print(f"petal never reached fastai's final accuracy {common:.4f}: petal ended at "
              f"{petal.val_acc:.4f} after {petal.seconds:.0f} s")
    print("seconds from the launch of each tool's process (imports and data loading included)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=list(PETAL_RECIPE), default="transfer",
                        help="transfer: pretrained EfficientNet-Lite0; scratch: ResNet9")
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--out", type=Path, help="work folder (default runs/vs_fastai-TIME)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--split", type=Path, help="split file (default: petal's seed-0 split)")
    testing = parser.add_argument_group("for testing only")
    testing.add_argument("--per-class", type=int, help="train on a linked slice of N photos "
                         "per class")
    testing.add_argument("--fastai-epochs", type=int, help="transfer: unfrozen (default 2); "
                         "scratch: one-cycle (default 5)")
    testing.add_argument("--freeze-epochs", type=int, default=1, help="transfer: frozen "
                         "(default 1)")
    testing.add_argument("--petal-set", action="append", default=[], metavar="FIELD=VALUE",
                         help="override a field of petal's recipe (repeatable)")
    args = parser.parse_args()

    out = args.out or ROOT / "runs" / f"vs_fastai-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    install_seconds = ensure_fastai_venv(VENV)
    data = linked(args.data, out / "slice", args.per_class) if args.per_class else args.data
    split_file = args.split or make_split(data, out / "split.json")
    split = json.loads(split_file.read_text())
    weights = (export_weights(out / "tf_efficientnet_lite0_imagenet.safetensors")
               if args.task == "transfer" else None)
    read_photos(data, split)
    petal = run_petal(PETAL_RECIPE[args.task], data, split_file, out, args.petal_set)
    fastai = run_fastai(args.task, data, split_file, weights, out, args.fastai_epochs,
                        args.freeze_epochs)
    comparison = compare(fastai, petal, len(split["val"]))
    print_table([fastai, petal], comparison)
    if args.json:
        record(args.json, {
            "task": args.task, "data": str(args.data),
            "per_class": args.per_class, "split": str(split_file),
            "n_train": len(split["train"]), "n_val": len(split["val"]),
            "fastai_install_seconds": install_seconds, "comparison": comparison,
            "runs": [asdict(run) for run in (fastai, petal)],
            "load_average_at_end": os.getloadavg()},
            f"petal against fastai ({args.task}): accuracy, seconds, the same split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
