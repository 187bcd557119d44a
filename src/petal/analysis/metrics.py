"""Metrics of predicted probabilities against true classes, and of novelty scores of known
photos against unknown ones: what `petal evaluate` reports, computed once for every job and
page that shows them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from petal.stats import wilson_interval

WORST_SHOWN = 16  # the worst mistakes listed (and drawn): enough to see a pattern

N_BINS = 15  # calibration bins, for ECE and the reliability diagram


def rounded(value: object) -> float:
    return round(float(value), 6)  # float32 digits beyond the 6th are noise in a report


def _undefined_as_none(values: np.ndarray, defined: np.ndarray) -> list[float | None]:
    return [rounded(v) if ok else None for v, ok in zip(values, defined)]


def compute_metrics(probs: np.ndarray, targets: np.ndarray, classes: Sequence[str],
                    top_k: int = 2) -> dict:
    """Accuracy, top-k accuracy, ECE, confusion matrix and per-class P/R/F1 (TorchMetrics).

    A per-class value that is 0/0 (precision of a class never predicted, recall of a class
    with no images) is None; the macro average is over the classes that have images, a
    class never predicted counting with precision 0.
    """
    import torch
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassCalibrationError,
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
        MulticlassRecall,
    )

    n, k = len(classes), max(1, min(top_k, len(classes)))
    preds, target = torch.from_numpy(probs).float(), torch.from_numpy(targets).long()
    matrix = MulticlassConfusionMatrix(n)(preds, target).numpy()
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = MulticlassPrecision(n, average=None)(preds, target).numpy()
    recall = MulticlassRecall(n, average=None)(preds, target).numpy()
    f1 = MulticlassF1Score(n, average=None)(preds, target).numpy()
    present = support > 0
    correct = int(np.trace(matrix))
    per_class = {
        name: {"precision": p, "recall": r, "f1": f, "support": int(s)}
        for name, p, r, f, s in zip(classes, _undefined_as_none(precision, predicted > 0),
                                    _undefined_as_none(recall, present),
                                    _undefined_as_none(f1, present | (predicted > 0)), support)
    }
    return {
        "accuracy": rounded(MulticlassAccuracy(n, average="micro")(preds, target)),
        "n_correct": correct,
        "accuracy_interval": [rounded(v) for v in wilson_interval(correct, len(targets))],
        "top_k": k,
        "top_k_accuracy": rounded(MulticlassAccuracy(n, top_k=k, average="micro")(preds, target)),
        "ece": rounded(MulticlassCalibrationError(n, n_bins=N_BINS, norm="l1")(preds, target)),
        "ece_bins": N_BINS,
        "macro_avg": {name: rounded(values[present].mean())
                      for name, values in (("precision", precision), ("recall", recall),
                                           ("f1", f1))},
        "per_class": per_class,
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def worst_mistakes(probs: np.ndarray, targets: np.ndarray, paths: Sequence[str],
                   classes: Sequence[str], limit: int = WORST_SHOWN) -> list[dict]:
    """The `limit` most confident wrong predictions, most confident first."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(predicted != targets)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return [{"path": paths[i], "true": classes[targets[i]], "predicted": classes[predicted[i]],
             "confidence": rounded(confidence[i])} for i in order]


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(an unknown photo scores above a known one), ties counted half: the Mann-Whitney U
    statistic over both counts. (TorchMetrics' binary_auroc squashes scores outside [0, 1]
    with a sigmoid first, which ties every large novelty score.)"""
    both = np.concatenate([known, unknown]).astype(np.float64)
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based, ties share their mean
    ranks = average_rank[inverse]
    u = ranks[len(known):].sum() - len(unknown) * (len(unknown) + 1) / 2
    return float(u / (len(known) * len(unknown)))


def open_set_metrics(known: np.ndarray, unknown: np.ndarray, threshold: float,
                     right: np.ndarray) -> dict:
    """AUROC (unknown photos as positives), FPR95 (the share of unknown photos kept when 95 %
    of known ones are), and at `threshold`: the shares kept and rejected, and the accuracy
    on the known photos kept."""
    at95 = float(np.quantile(known, 0.95, method="higher"))
    kept = known <= threshold
    return {"auroc": rounded(auroc(known, unknown)),
            "fpr95": rounded((unknown <= at95).mean()),
            "known_kept": rounded(kept.mean()),
            "unknown_rejected": rounded((unknown > threshold).mean()),
            "accuracy_kept": rounded(right[kept].mean()) if kept.any() else None,
            "accuracy_all": rounded(right.mean())}
