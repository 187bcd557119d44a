"""Full and read-only disks: an `error:` line and exit 1, and nothing already written lost.

Each case runs petal in a private mount namespace (`unshare`) on a small tmpfs: a real
ENOSPC or EROFS from the kernel, no root needed beyond the namespace, nothing left mounted.
What the disk held at the end is copied out for the test to inspect.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import petal
from petal.training.checkpoints import read_checkpoint

PETAL = Path(sys.executable).with_name("petal")
TINY = ["--recipe", "original-resnet9", "--set", "width=0.125", "--set", "input_size=32",
        "--set", "batch_size=4", "--set", "epochs=2", "--no-progress"]


def _namespaces_work() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="needs unshare -rm (user and mount namespaces)")


def on_small_disk(script: str, size_kb: int, tmp_path: Path, read_only: bool = False
                  ) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the shell `script` with $DISK a fresh tmpfs of `size_kb` (then made read-only when
    asked; $SETUP runs before that); returns its result and a copy of what $DISK held."""
    disk, copy = tmp_path / "disk", tmp_path / "disk-after"
    disk.mkdir()
    copy.mkdir()
    remount = 'mount -o remount,ro "$DISK"' if read_only else "true"
    wrapper = (f'mount -t tmpfs -o size={size_kb}k tmpfs "$DISK" && eval "$SETUP" && {remount} '
               '&& { eval "$SCRIPT"; }; status=$?; cp -a "$DISK"/. "$COPY"/; exit $status')
    setup, _, body = script.partition("\n---\n") if "\n---\n" in script else ("true", "", script)
    env = {"DISK": str(disk), "COPY": str(copy), "SETUP": setup, "SCRIPT": body,
           "PETAL": str(PETAL), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", wrapper], env=env, capture_output=True,
                          text=True, timeout=300)
    return done, copy


def _assert_clean_error(done: subprocess.CompletedProcess, reason: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and reason in done.stderr


def test_full_disk_during_training_leaves_no_partial_checkpoint(tiny_run: Path,
                                                                tmp_path: Path) -> None:
    # Room for the run files and one checkpoint (~1.3 MB), not two: best.ckpt is written
    # after epoch 1, last.ckpt then fails. Lightning's own writer left a truncated file here.
    data, cache = tiny_run.parent / "data", tmp_path / "cache"
    script = (f'"$PETAL" train --data {data} {" ".join(TINY)} --folds 0 --cache-dir {cache} '
              '--out "$DISK/run"')
    done, after = on_small_disk(script, 1500, tmp_path)
    _assert_clean_error(done, "No space left on device")
    checkpoints = after / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt"]  # no temp, no half
    assert read_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0


def test_full_disk_during_the_model_save_keeps_the_old_model(tiny_run: Path,
                                                             tmp_path: Path) -> None:
    photo = tiny_run.parent / "data" / "dog" / "dog1.jpg"
    before = petal.load(tiny_run).predict(photo).to_json()
    # Resuming a finished run saves its model again; the disk is filled to the last 64 KiB.
    script = (f'cp -a {tiny_run} "$DISK/run" && '
              'head -c $(( $(df -k --output=avail "$DISK" | tail -1) * 1024 - 65536 )) '
              '/dev/zero > "$DISK/filler"\n---\n"$PETAL" train --resume "$DISK/run"')
    done, after = on_small_disk(script, 4096, tmp_path)
    _assert_clean_error(done, "No space left on device")
    assert not (after / "run" / "model.partial").exists()
    assert petal.load(after / "run").predict(photo).to_json() == before


def test_read_only_out_folder(tiny_run: Path, tmp_path: Path) -> None:
    data, cache = tiny_run.parent / "data", tmp_path / "cache"
    script = (f'cp -a {tiny_run} "$DISK/run"\n---\n'
              f'"$PETAL" train --data {data} {" ".join(TINY)} --cache-dir {cache} '
              '--out "$DISK/new" 2> "$COPY/../train.err"; echo $? > "$COPY/../train.rc"; '
              '"$PETAL" evaluate "$DISK/run" --cache-dir ' + str(cache))
    done, _ = on_small_disk(script, 4096, tmp_path, read_only=True)
    _assert_clean_error(done, "Read-only file system")
    assert (tmp_path / "train.rc").read_text().strip() == "1"
    train_err = (tmp_path / "train.err").read_text()
    assert "Read-only file system" in train_err and "Traceback" not in train_err
