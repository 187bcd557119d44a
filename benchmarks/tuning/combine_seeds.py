"""Two fine-tunes of one recipe (e.g. two training seeds) combined, against each alone.

A tuning helper (benchmarks/tuning/README.md). For each pair of run (or model) folders
trained on the same split, counts the validation images right for each model, for their
averaged probabilities (an ensemble: two networks at inference) and for their averaged
weights (a soup, Wortsman et al. 2022: one network), each with the recipe's mirrored view
when the models were trained with tta_flip. On a 2-core CPU two one-core fine-tunes run
side by side, so a pair costs less than twice one.

    .venv/bin/python benchmarks/tuning/combine_seeds.py \
        --pair runs/tune5-freezebn/original-transfer-split1-seed0 \
               runs/tune5-freezebn-seed1/original-transfer-split1-seed1 \
        --json benchmarks/tuning/results/combine_seeds.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py

from common import record, validation_photos  # noqa: E402

import petal  # noqa: E402
from petal.inference.model_folder import load_model, save_model_folder  # noqa: E402
from petal.jobs.evaluate import probabilities  # noqa: E402
from petal.run_folder import find_model_folder  # noqa: E402


def soup(first: Path, second: Path, out: Path) -> Path:
    """A model folder at `out` whose weights are the mean of the two models' weights."""
    model, card = load_model(first)
    other = load_model(second)[0].state_dict()
    model.load_state_dict({name: (value + other[name]) / 2 if value.is_floating_point() else value
                           for name, value in model.state_dict().items()})
    return save_model_folder(out, model, card)


def images_right(first: Path, second: Path) -> dict:
    folders = [find_model_folder(first), find_model_folder(second)]
    classifiers = [petal.load(folder) for folder in folders]
    card = classifiers[0].card
    splits = [(folder / c.card.split).resolve() for folder, c in zip(folders, classifiers)]
    if splits[0].read_bytes() != splits[1].read_bytes():
        raise SystemExit(f"{first} and {second} were not trained on the same split")
    photos = validation_photos(folders[0])
    squares, targets = photos.squares, photos.targets
    tta = bool(card.recipe.get("tta_flip"))
    with tempfile.TemporaryDirectory() as work:
        souped = petal.load(soup(folders[0], folders[1], Path(work) / "soup"))
        probs = [probabilities(c, squares, tta, progress=False)
                 for c in [*classifiers, souped]]
    right = [int((p.argmax(1) == targets).sum()) for p in [*probs, probs[0] + probs[1]]]
    return {"first": str(first), "second": str(second), "n": len(targets),
            "first_right": right[0], "second_right": right[1], "ensemble_right": right[3],
            "soup_right": right[2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", nargs=2, type=Path, action="append", required=True,
                        metavar=("FIRST", "SECOND"), help="two run or model folders")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    for first, second in args.pair:
        rows.append(images_right(first, second))
        print("  ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    totals = {key: sum(row[key] for row in rows)
              for key in ["n", "first_right", "second_right", "ensemble_right", "soup_right"]}
    print("total  " + "  ".join(f"{k} {v}" for k, v in totals.items()))
    if args.json:
        record(args.json, {"pairs": rows, "totals": totals}, "pairs of models of one split: "
               "each alone, their averaged probabilities (ensemble), their averaged weights "
               "(soup)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
