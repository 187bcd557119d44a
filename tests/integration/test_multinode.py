"""Training on several machines: two torchrun nodes on this machine, one process each,
train exactly as one node with two processes (same ranks, same shards, same history)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from petal.run_folder import read_history

PETAL = Path(sys.executable).with_name("petal")
TORCHRUN = Path(sys.executable).with_name("torchrun")
TRAIN = ["train", "--recipe", "original-resnet9", "--set", "width=0.125", "--set",
         "input_size=32", "--set", "batch_size=4", "--set", "epochs=2", "--no-progress",
         "--accelerator", "cpu", "--strategy", "ddp"]
COMPARED = ("epoch", "train_loss", "val_loss", "val_acc", "lr")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_as_one_node_with_two_processes(image_folder: Path,
                                                        tmp_path: Path) -> None:
    data = ["--data", str(image_folder), "--cache-dir", str(tmp_path / "cache")]
    # one thread a process in both runs: a different thread count sums in another order
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one_node = subprocess.run(
        [PETAL, *TRAIN, *data, "--devices", "2", "--out", str(tmp_path / "one_node")],
        capture_output=True, text=True, timeout=300, env=env)
    assert one_node.returncode == 0, one_node.stderr[-3000:]

    port = _free_port()
    nodes = [subprocess.Popen(
        [TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
         "--master-addr", "127.0.0.1", "--master-port", str(port), PETAL, *TRAIN, *data,
         "--devices", "1", "--num-nodes", "2", "--out", str(tmp_path / "two_nodes")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    assert sum(out.count("Done: validation accuracy") for out, _ in outputs) == 1  # rank 0

    expected = read_history(tmp_path / "one_node" / "history.csv")
    found = read_history(tmp_path / "two_nodes" / "history.csv")
    assert len(found) == len(expected) == 2
    for row, reference in zip(found, expected):
        assert {k: row[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}


def _feature_rows(cache: Path) -> dict[str, np.ndarray]:
    """Every stored feature row of a cache folder, by view and its photo's hash."""
    found = {}
    for view in cache.glob("features/*/view*"):
        index = json.loads((view / "index.json").read_text())["rows"]
        rows = np.fromfile(view / "rows.bin", np.float16)
        rows = rows.reshape(max(row for row, _ in index.values()) + 1, -1)
        found.update({f"{view.name}/{key}": rows[row] for key, (row, _) in index.items()})
    return found


def test_two_nodes_share_out_the_photos_features(image_folder: Path, tmp_path: Path) -> None:
    """fast-transfer on two torchrun nodes with one cache folder: each photo decoded and its
    features computed once for the whole job, half by each, and the features are those one
    process computes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cached = ["train", "--recipe", "fast-transfer", "--set", "epochs=1", "--folds", "0",
              "--no-progress", "--accelerator", "cpu", "--data", str(image_folder)]
    alone = subprocess.run([PETAL, *cached, "--cache-dir", str(tmp_path / "alone"),
                            "--out", str(tmp_path / "one")], capture_output=True, text=True,
                           timeout=300, env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]

    port = _free_port()
    nodes = [subprocess.Popen(
        [TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
         "--master-addr", "127.0.0.1", "--master-port", str(port), PETAL, *cached,
         "--strategy", "ddp", "--devices", "1", "--num-nodes", "2",
         "--cache-dir", str(tmp_path / "shared"), "--out", str(tmp_path / "two")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    said = [re.findall(r"\w+/view0: this process \((\d) of 2\) computed (\d+) of the "
                       r"(\d+) missing rows", out + err) for out, err in outputs]
    shares = {int(place): (int(mine), int(total)) for lines in said for place, mine, total in lines}
    assert set(shares) == {1, 2}, outputs  # both computed, each its own share
    assert sum(mine for mine, _ in shares.values()) == 12 == shares[1][1]  # each photo once
    assert all(mine > 0 for mine, _ in shares.values())
    one, two = _feature_rows(tmp_path / "alone"), _feature_rows(tmp_path / "shared")
    assert one.keys() == two.keys() and len(one) == 12
    for key, row in one.items():
        np.testing.assert_allclose(two[key].astype(np.float32), row.astype(np.float32),
                                   atol=2e-2, rtol=2e-2)
