"""`petal data review` on the real flowers set: its first 30 findings, and what leaving the
flagged training photos out does to fast-transfer's validation accuracy.

    .venv/bin/python benchmarks/review_flowers.py --seeds 0 1 2 \
        --sheet docs/images/review_top30.jpg --json benchmarks/results/review_flowers.json

The sheet numbers the 30 photos the review finds most likely filed under the wrong class
(judge them by eye: docs/RESULTS.md). Then, for each split seed, fast-transfer trains twice on
the same split: on every training photo, and without the training photos the review flags
(validation photos are the same in both, flagged or not), and the validation accuracies are
compared per seed and as a mean.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
from pathlib import Path

from common import FLOWERS, record
from PIL import Image

from petal.data.decisions import Decisions
from petal.data.scan import scan_folder
from petal.data.split import make_split
from petal.jobs.review import review
from petal.report.figures import plot_gallery, thumbnail
from petal.training.fit import TrainRequest
from petal.training.orchestrator import train_model
from petal.training.recipes import get_recipe

SHEET_SIZE = 30


def write_sheet(found: list[dict], root: Path, path: Path) -> None:
    """The first SHEET_SIZE label issues, numbered, as a JPEG contact sheet."""
    top = found[:SHEET_SIZE]
    png = Path(tempfile.mkdtemp()) / "sheet.png"
    plot_gallery([thumbnail(root / i["path"], side=192) for i in top],
                 [f"{n}. {i['given']} -> {i['suggested']}" for n, i in enumerate(top, 1)],
                 png, f"petal data review on the flowers set: the first {len(top)} likely "
                 "label mistakes (filed as -> looks like)", limit=SHEET_SIZE, columns=6)
    buffer = io.BytesIO()
    Image.open(png).convert("RGB").save(buffer, "JPEG", quality=82)
    path.write_bytes(buffer.getvalue())


def accuracy(data: Path, split_file: Path, out: Path, cache_dir: str | None) -> float:
    request = TrainRequest(data=data, recipe=get_recipe("fast-transfer"), out=out,
                           split_file=split_file, cache_dir=cache_dir)
    return train_model(request, folds=0, progress=False).val_acc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sheet", type=Path, help="write the contact sheet here (JPEG)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cache-dir", help="petal's cache (default: the usual one)")
    args = parser.parse_args()
    found = review(args.data, cache_dir=args.cache_dir, progress=False)
    flagged = {issue["path"] for issue in found.label_issues}
    top = [{"rank": n, **issue} for n, issue in enumerate(found.label_issues[:SHEET_SIZE], 1)]
    for issue in top:
        print(f"{issue['rank']:>2}. {issue['path']}: {issue['given']} -> {issue['suggested']} "
              f"({issue['score']:.2f})")
    if args.sheet:
        write_sheet(found.label_issues, args.data, args.sheet)
    index = scan_folder(args.data, progress=False)
    runs = []
    with tempfile.TemporaryDirectory(prefix="petal-review-") as scratch:
        for seed in args.seeds:
            split = make_split(index, seed=seed)
            left_out = sorted(i.path for i in split.train if i.path in flagged)
            cleaned = split.with_decisions(Decisions("flagged by petal data review", "",
                                                     tuple(left_out), {}))
            files = {"all": Path(scratch) / f"all{seed}.json",
                     "cleaned": Path(scratch) / f"cleaned{seed}.json"}
            split.save(files["all"])
            cleaned.save(files["cleaned"])
            result = {name: round(accuracy(args.data, file, Path(scratch) / f"{name}{seed}",
                                           args.cache_dir), 6) for name, file in files.items()}
            runs.append({"seed": seed, "n_train": len(split.train), "left_out": len(left_out),
                         "n_val": len(split.val), "val_acc_all": result["all"],
                         "val_acc_without_flagged": result["cleaned"]})
            print(f"split seed {seed}: {len(split.val)} validation photos; all "
                  f"{len(split.train)} training photos {100 * result['all']:.1f} %, without the "
                  f"{len(left_out)} flagged {100 * result['cleaned']:.1f} %", flush=True)
    differences = [r["val_acc_without_flagged"] - r["val_acc_all"] for r in runs]
    summary = {"mean_all": round(statistics.fmean(r["val_acc_all"] for r in runs), 6),
               "mean_without_flagged": round(statistics.fmean(
                   r["val_acc_without_flagged"] for r in runs), 6),
               "mean_difference_points": round(100 * statistics.fmean(differences), 2),
               "difference_points": [round(100 * d, 2) for d in differences]}
    print(f"mean over {len(runs)} splits: all {100 * summary['mean_all']:.2f} %, without "
          f"flagged {100 * summary['mean_without_flagged']:.2f} % (difference per split "
          f"{summary['difference_points']} points)")
    if args.json:
        record(args.json, {"flagged": len(flagged), "top": top, "runs": runs,
                           "summary": summary},
               "`petal data review` on the real set: its first picks; fast-transfer's accuracy "
               "with and without the flagged training photos, by split seed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
