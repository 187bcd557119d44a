"""The unknown threshold checked, and set, with photos a person filed as none of the classes.

`known`: the novelty of held-out photos of the classes (a card's validation or out-of-fold
scores, from which its threshold is a quantile: petal.inference.novelty.threshold_for);
`none`: the novelty of photos of none of them, by the same network.

- The check: at the card's `keep`, how many none photos the threshold rejects. They did not
  set it, so the share is a fair estimate (for photos like them: a person filed these, often
  because the model had called them unknown already).
- The setting, with MIN_TO_SET none photos or more: the threshold (one of the known scores)
  that maximises the balanced accuracy, the mean of the known share kept and the none share
  rejected, keeping at least MIN_KEEP of the known photos, the middle one among ties. It is
  judged cross-fitted, never on the photos that chose it: FOLDS folds of both samples, each
  fold's photos judged by the threshold chosen on the other folds, against the card's keep
  judged the same way; it is adopted only when it does better there beyond chance: the
  0.5 % bootstrap quantile of the gain in balanced accuracy (photos resampled, both
  thresholds' outcomes paired) is above zero. Photos like the known ones choose a threshold
  no better than the card's, and a lucky fold would otherwise adopt it (simulated, with
  scores drawn alike: adopted 5 times in 100, at a cost of at most 5 points of known kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petal.stats import wilson_interval

MIN_TO_SET = 20  # none photos below which they only check the threshold
MIN_KEEP = 0.9  # the known share a threshold chosen from none photos keeps, at least
FOLDS = 5
BOOTSTRAP = 2000
LOW_QUANTILE = 0.005  # one-sided: a threshold is adopted on firm evidence only


@dataclass(frozen=True)
class Shares:
    """How a threshold did: known photos kept, none photos rejected (counts)."""

    known_kept: int
    n_known: int
    none_rejected: int
    n_none: int

    @property
    def balanced(self) -> float:
        return (self.known_kept / self.n_known + self.none_rejected / self.n_none) / 2

    def to_json(self) -> dict:
        return {"known_kept": self.known_kept, "n_known": self.n_known,
                "known_kept_interval": [round(v, 4) for v in wilson_interval(
                    self.known_kept, self.n_known)],
                "none_rejected": self.none_rejected, "n_none": self.n_none,
                "none_rejected_interval": [round(v, 4) for v in wilson_interval(
                    self.none_rejected, self.n_none)]}


@dataclass(frozen=True)
class NoneCheck:
    """The threshold at the card's keep against the none photos, and, with enough of them,
    the keep they choose and both judged cross-fitted."""

    keep: float  # the card's
    at_keep: Shares  # the none photos judged at the card's threshold (known: the card's own)
    chosen_keep: float | None = None  # None: fewer than MIN_TO_SET none photos
    chosen_cross_fitted: Shares | None = None
    keep_cross_fitted: Shares | None = None  # the card's keep, judged on the same folds
    gain_low: float | None = None  # LOW_QUANTILE of the chosen one's balanced-accuracy gain

    @property
    def adopted(self) -> bool:
        return self.gain_low is not None and self.gain_low > 0

    @property
    def final_keep(self) -> float:
        return self.chosen_keep if self.adopted and self.chosen_keep is not None else self.keep

    def to_json(self) -> dict:
        data = {"keep": self.keep, "at_keep": self.at_keep.to_json(),
                "adopted": self.adopted}
        if self.chosen_keep is not None:
            data.update(chosen_keep=round(self.chosen_keep, 6),
                        chosen_cross_fitted=self.chosen_cross_fitted.to_json(),
                        keep_cross_fitted=self.keep_cross_fitted.to_json(),
                        gain_low=round(self.gain_low, 6))
        return data


def keep_of_rank(rank: int, n: int) -> float:
    """The `keep` whose threshold (np.quantile, method "higher") is the `rank`-th smallest of
    `n` scores (from 0): half a rank below it, safe from rounding."""
    return 1.0 if n < 2 or rank >= n - 1 else max(rank - 0.5, 0.0) / (n - 1)


def choose_threshold(known: np.ndarray, none: np.ndarray) -> tuple[float, int]:
    """(threshold, its rank among the sorted known scores) maximising the balanced accuracy,
    keeping at least MIN_KEEP of `known`; the middle of the best ranks."""
    ordered = np.sort(known)
    kept = np.searchsorted(ordered, ordered, side="right") / len(ordered)
    rejected = (none[None, :] > ordered[:, None]).mean(axis=1)
    balanced = np.where(kept >= MIN_KEEP, (kept + rejected) / 2, -1.0)
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    rank = int(best[len(best) // 2])
    rank = int(np.searchsorted(ordered, ordered[rank], side="right")) - 1  # last of a tie
    return float(ordered[rank]), rank


def _threshold_at(known: np.ndarray, keep: float) -> float:
    return float(np.quantile(known, keep, method="higher"))


def _cross_fitted(known: np.ndarray, none: np.ndarray, keep: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's outcome (known: kept, none: rejected) under the chosen threshold (row 0)
    and the card's keep (row 1), each set on the FOLDS - 1 folds the photo is not in."""
    rng = np.random.default_rng(0)
    known_fold = rng.permutation(np.arange(len(known)) % FOLDS)
    none_fold = rng.permutation(np.arange(len(none)) % FOLDS)
    kept, rejected = np.zeros((2, len(known)), bool), np.zeros((2, len(none)), bool)
    for fold in range(FOLDS):
        fit_known, fit_none = known[known_fold != fold], none[none_fold != fold]
        for row, threshold in enumerate((choose_threshold(fit_known, fit_none)[0],
                                         _threshold_at(fit_known, keep))):
            kept[row, known_fold == fold] = known[known_fold == fold] <= threshold
            rejected[row, none_fold == fold] = none[none_fold == fold] > threshold
    return kept, rejected


def _gain_low(kept: np.ndarray, rejected: np.ndarray) -> float:
    """The LOW_QUANTILE of the balanced-accuracy gain of row 0 over row 1, photos of each
    sample resampled together (paired)."""
    rng = np.random.default_rng(0)
    known_gain = (kept[0].astype(float) - kept[1])[
        rng.integers(0, kept.shape[1], (BOOTSTRAP, kept.shape[1]))].mean(axis=1)
    none_gain = (rejected[0].astype(float) - rejected[1])[
        rng.integers(0, rejected.shape[1], (BOOTSTRAP, rejected.shape[1]))].mean(axis=1)
    return float(np.quantile((known_gain + none_gain) / 2, LOW_QUANTILE))


def check_none(known: np.ndarray, none: np.ndarray, keep: float) -> NoneCheck:
    """The card's threshold (`keep` of `known`) against `none`, and with MIN_TO_SET none
    photos or more (and FOLDS known ones a fold), the threshold they choose."""
    known, none = np.asarray(known, np.float64), np.asarray(none, np.float64)
    threshold = _threshold_at(known, keep)
    at_keep = Shares(int((known <= threshold).sum()), len(known),
                     int((none > threshold).sum()), len(none))
    if len(none) < MIN_TO_SET or len(known) < FOLDS * FOLDS:
        return NoneCheck(keep, at_keep)
    rank = choose_threshold(known, none)[1]
    kept, rejected = _cross_fitted(known, none, keep)
    chosen, card = (Shares(int(kept[row].sum()), len(known), int(rejected[row].sum()),
                           len(none)) for row in (0, 1))
    return NoneCheck(keep, at_keep, keep_of_rank(rank, len(known)), chosen, card,
                     _gain_low(kept, rejected))
