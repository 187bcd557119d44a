"""`petal data review`: photos that are likely filed under the wrong class, and outliers.

Every image of the folder goes through a pretrained trunk once (the frozen-trunk features
fast-transfer caches, so a review after training costs seconds), then a linear head is fitted
on the pooled features of k-1 folds and predicts the k-th: each image gets class
probabilities from a model that never saw it (out-of-fold), which an in-sample loss, as in
fastai's ImageClassifierCleaner, cannot give for a wrong label the model memorised.

Likely label mistakes: confident learning (Northcutt, Jiang and Chuang 2021, "Confident
learning: estimating uncertainty in dataset labels"): each class's threshold is the mean
out-of-fold probability of that class over the images filed under it; an image is flagged
when another class reaches its threshold and is the most probable such class, ranked by how
far that class's probability exceeds the given one's. Written here (a few lines) rather than
taken from cleanlab, whose AGPL-3.0 licence does not fit petal's MIT licence.
Outliers: the open-set score (petal.inference.novelty), each image's distance to its 10th
nearest other image, flagged above Tukey's fence (the third quartile plus 1.5 interquartile
ranges). What `--out` writes is report.review_page's.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petal.analysis.confident import (
    RANKINGS,
    hard_cases,
    label_issues,
    out_of_fold,
    outlier_scores,
)
from petal.data.check import check_folder
from petal.data.decoded_cache import DecodedCache
from petal.data.split import deal_folds
from petal.errors import PetalError
from petal.models import architecture_config, build_model, default_weights
from petal.models.features import AnswerWithFeatures
from petal.paths import cache_root
from petal.training.cut import cut_trunks
from petal.training.feature_cache import trunk_features

FOLDS = 5
TRAIN_FROM = "conv_head"  # fast-transfer's cut: its cached features serve the review too
OUTLIER_IQRS = 1.5  # Tukey's fence

# What the review's agreement is, for a person who has just seen training report a higher
# accuracy: the review's predictions come from a simpler model than the trained one.
AGREEMENT_IS = ("the review's models are linear heads fitted in seconds on a pretrained "
                "trunk's features, rougher than a model petal train makes, so this agreement "
                "is usually below the accuracy training reports")


@dataclass
class Review:
    root: str
    classes: list[str]
    n_images: int
    folds: int
    label_issues: list[dict]  # path, given, suggested, score; most likely first
    outliers: list[dict]  # path, score; farthest first
    duplicates: dict = field(default_factory=dict)  # as `petal data check` finds them
    oof_accuracy: float = 0.0  # how often the out-of-fold prediction equals the given label
    # the other out-of-fold disagreements (path, given, suggested, score): photos that are
    # hard or ambiguous, or mislabelled where confident learning's thresholds are too strict
    # to say so (a small or clean set); the widest disagreement first
    hard: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def findings(self) -> list[dict]:
        """Every photo found, as a row: finding (label, hard or outlier), path, given,
        suggested, score; the likeliest label mistakes first."""
        return ([{"finding": "label", **item} for item in self.label_issues]
                + [{"finding": "hard", **item} for item in self.hard]
                + [{"finding": "outlier", "path": item["path"],
                    "given": item["path"].split("/")[0], "suggested": "",
                    "score": item["score"]} for item in self.outliers])

    def summary(self) -> str:
        """What `petal data review` prints."""
        return format_review(self)

    def __repr__(self) -> str:
        return (f"Review({self.root!r}: {len(self.label_issues)} likely label mistakes, "
                f"{len(self.hard)} hard, {len(self.outliers)} outliers in {self.n_images} "
                "photos)")

    def to_pandas(self) -> Any:
        """The findings as a pandas DataFrame (pandas is not one of petal's dependencies)."""
        from petal.display import pandas

        return pandas().DataFrame(self.findings())

    def _repr_html_(self) -> str:
        from petal.display import heading, paragraph, table_html
        from petal.report.notebook import thumbnails_html

        columns = ["finding", "path", "given", "suggested", "score"]
        rows = self.findings()
        first = self.label_issues[:8]
        return (heading(f"Review of {self.root}")
                + paragraph(f"{self.folds}-fold out-of-fold predictions agree with the given "
                            f"label for {100 * self.oof_accuracy:.1f} % of {self.n_images} "
                            f"photos ({AGREEMENT_IS}); {len(self.label_issues)} likely "
                            f"label mistakes, {len(self.hard)} hard or ambiguous, "
                            f"{len(self.outliers)} outliers")
                + thumbnails_html([Path(self.root) / item["path"] for item in first],
                                  [f"{item['given']} -> {item['suggested']}" for item in first])
                + table_html([[row[c] for c in columns] for row in rows], columns))


def pooled_features(classes: list[str], files: list[tuple[Path, str]], model: str,
                    cache_dir: str | os.PathLike | None, progress: bool) -> np.ndarray:
    """(N, D) pooled penultimate features of a pretrained `model`: the trunk's cached
    outputs (petal.training.feature_cache) through the rest of the network's pretrained layers."""
    weights = default_weights(model)
    if weights is None:
        raise PetalError(f"{model} has no pretrained weights: review with a pretrained model "
                         "(the default efficientnet_lite0)")
    network, spec = build_model(model, len(classes), weights=weights)
    trunks, top = cut_trunks(network.eval(), TRAIN_FROM)
    pixels = DecodedCache(cache_root(cache_dir), spec.resize_size).ensure(files, progress=progress)
    architecture = architecture_config(model, len(classes))
    stored = [trunk_features(cache_root(cache_dir), trunk, architecture, spec, len(trunks) > 1)
              .view(pixels, [sha for _, sha in files], progress=progress) for trunk in trunks]
    answer = AnswerWithFeatures(top.eval(), spec)

    def batch(start: int) -> torch.Tensor | list[torch.Tensor]:
        parts = [torch.from_numpy(np.asarray(s[start:start + 256], np.float32)) for s in stored]
        return parts if len(parts) > 1 else parts[0]

    with torch.inference_mode():
        return np.concatenate([answer(batch(i))[1].numpy() for i in range(0, len(files), 256)])


def review(data: str | os.PathLike, model: str = "efficientnet_lite0", folds: int = FOLDS,
           cache_dir: str | os.PathLike | None = None, progress: bool = True,
           rank: str = RANKINGS[0], labels: str | os.PathLike | None = None,
           label_columns: tuple[str, str] | None = None) -> Review:
    """Review an image folder (see the module docstring), or the photos of a labels file
    (`labels`, `label_columns`: petal.data.labels_file); PetalError if it cannot be used.
    `rank` orders the likely label mistakes (petal.analysis.confident.label_issues)."""
    if folds < 2:
        raise PetalError(f"--folds {folds}: at least 2")
    if rank not in RANKINGS:
        raise PetalError(f"--rank {rank}: use one of {', '.join(RANKINGS)}")
    report = check_folder(data, progress=progress, labels=labels, label_columns=label_columns)
    if not report.usable:
        raise PetalError(f"the data set cannot be used: {report.problem}")
    index = report.index
    if min(index.counts().values()) < folds:
        raise PetalError(f"every class needs at least {folds} images for {folds} folds: "
                         "use fewer --folds")
    labels = np.array([index.classes.index(r.label) for r in index.images])
    files = [(index.root / r.path, r.sha256) for r in index.images]
    features = pooled_features(index.classes, files, model, cache_dir, progress)
    fold_of = {r.path: k for k, members in enumerate(deal_folds(index.images, folds))
               for r in members}
    probabilities = out_of_fold(features, labels, len(index.classes),
                                np.array([fold_of[r.path] for r in index.images]))
    paths = [r.path for r in index.images]
    flagged = label_issues(probabilities, labels, rank)

    def finding(i: int, suggested: int, score: float) -> dict:
        return {"path": paths[i], "given": index.classes[labels[i]],
                "suggested": index.classes[suggested], "score": round(score, 4)}

    issues = [finding(*item) for item in flagged]
    hard = [finding(*item) for item in hard_cases(probabilities, labels,
                                                   {i for i, _, _ in flagged})]
    scores = outlier_scores(features)
    q1, q3 = np.quantile(scores, [0.25, 0.75])
    far = np.flatnonzero(scores > q3 + OUTLIER_IQRS * (q3 - q1))
    outliers = [{"path": paths[i], "score": round(float(scores[i]), 4)}
                for i in far[np.argsort(-scores[far])]]
    checked = report.to_json()
    return Review(str(index.root.absolute()), index.classes, len(paths), folds, issues, outliers,
                  {key: checked[key] for key in ("exact_duplicates", "near_duplicates",
                                                 "label_conflicts")},
                  round(float((probabilities.argmax(axis=1) == labels).mean()), 4), hard)


def format_review(result: Review, limit: int = 20) -> str:
    """The human-readable summary: the most likely label mistakes and outliers first."""
    lines = [f"Reviewed {result.n_images} images in {len(result.classes)} classes of "
             f"{result.root} ({result.folds}-fold out-of-fold predictions agree with the given "
             f"label for {100 * result.oof_accuracy:.1f} %: {AGREEMENT_IS})", "",
             f"Likely label mistakes ({len(result.label_issues)}), most likely first:"]
    lines += [f"  {i['path']}: filed as {i['given']}, looks like {i['suggested']} "
              f"(score {i['score']:.2f})" for i in result.label_issues[:limit]]
    if result.hard:
        lines += ["", f"Hard or ambiguous ({len(result.hard)}): the out-of-fold prediction "
                  "disagrees with the label, less surely:"]
        lines += [f"  {i['path']}: filed as {i['given']}, predicted {i['suggested']} "
                  f"(score {i['score']:.2f})" for i in result.hard[:limit]]
    lines += ["", f"Outliers, far from every other image ({len(result.outliers)}):"]
    lines += [f"  {o['path']} (distance {o['score']:.2f})" for o in result.outliers[:limit]]
    duplicates = result.duplicates
    lines += ["", f"Exact duplicate groups {len(duplicates['exact_duplicates'])}, near-duplicate "
              f"pairs {len(duplicates['near_duplicates'])}, copies under two classes "
              f"{len(duplicates['label_conflicts'])} (petal data check lists them)"]
    return "\n".join(lines)
