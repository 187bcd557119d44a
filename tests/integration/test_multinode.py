"""Training on several machines: two torchrun nodes on this machine, one process each,
train exactly as one node with two processes (same ranks, same shards, same history)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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
