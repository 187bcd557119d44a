"""Whether a batch of new photos is less like the training photos than the photos behind the
model card's figures (its held-out or out-of-fold photos): the card's accuracy and its share
called unknown were measured on those, and hold for new photos only as far as they are alike.

Two one-sided tests, each at half of ALPHA (Bonferroni), on the novelty score
(petal.inference.novelty) that every answer already carries:

- the share called unknown: Fisher's exact test of the batch's count above the threshold
  against the held-out photos' count (both samples' sizes count: a card set on 40 photos
  promises less than one set on 4000);
- the whole novelty distribution: the two-sample Kolmogorov-Smirnov test (alibi-detect's
  univariate drift test), which also sees photos that grow less alike without crossing
  the threshold yet.

Confidence alone would not do (NannyML's estimate assumes the calibration survives the
shift): on photos taken later the mean top probability stayed at 93 % while accuracy fell
to 85 %. The check says nothing about a batch of fewer than MIN_PHOTOS; at any size it says
how many of the batch would have to be called unknown for it to fire (`needs`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ALPHA = 0.01  # false alarms on photos like the held-out ones: at most 1 batch in 100
WINDOW = 100  # a server's answers checked at a time (ShiftWatch)
MIN_PHOTOS = 10  # fewer are not checked: a handful of photos says little of a distribution


@dataclass(frozen=True)
class ShiftCheck:
    """A batch of photos against the held-out photos behind the card's figures."""

    n: int  # photos in the batch
    unknown: int  # of them called unknown (novelty above the threshold)
    reference_n: int  # held-out photos
    reference_unknown: int  # of them above the same threshold
    p_share: float  # Fisher's exact test, one-sided: the batch's share is higher
    p_novelty: float  # two-sample KS, one-sided: the batch's novelty is higher
    needs: int | None  # unknown photos in a batch of n that fire the share test (None: none)
    alpha: float = ALPHA

    @property
    def share(self) -> float:
        return self.unknown / self.n if self.n else 0.0

    @property
    def expected_share(self) -> float:
        return self.reference_unknown / self.reference_n if self.reference_n else 0.0

    @property
    def enough(self) -> bool:
        return self.n >= MIN_PHOTOS

    @property
    def shifted(self) -> bool:
        return self.enough and min(self.p_share, self.p_novelty) < self.alpha / 2

    def message(self) -> str:
        """One plain line: what the check found, and what to do when it fired."""
        if not self.enough:
            return (f"{self.n} photos: too few to tell whether they are like the training "
                    f"photos (the check needs {MIN_PHOTOS} or more)")
        shares = (f"{100 * self.share:.1f} % called unknown against "
                  f"{100 * self.expected_share:.1f} % of those")
        if self.shifted:  # said by the test that fired: the share, or the scores as a whole
            why = (f"{shares}, p = {self.p_share:.2g}" if self.p_share <= self.p_novelty else
                   f"their novelty scores run higher as a whole, p = {self.p_novelty:.2g}; "
                   f"{shares}")
            return (f"these {self.n} photos are less like the training photos than the photos "
                    f"behind the model's figures ({why}): expect lower accuracy than its card "
                    f"says, and label some of them (petal label)")
        fires = (f"; with {self.n} photos the check fires at {self.needs} called unknown"
                 if self.needs is not None else "")
        return (f"nothing shows these {self.n} photos differ from the photos behind the "
                f"model's figures ({shares}{fires})")

    def to_json(self) -> dict:
        return {"n": self.n, "unknown": self.unknown, "share": round(self.share, 6),
                "expected_share": round(self.expected_share, 6),
                "reference_n": self.reference_n, "p_share": round(self.p_share, 6),
                "p_novelty": round(self.p_novelty, 6), "needs": self.needs,
                "alpha": self.alpha, "enough": self.enough, "shifted": self.shifted}


def check_shift(scores: np.ndarray, reference_scores: np.ndarray, threshold: float,
                alpha: float = ALPHA) -> ShiftCheck:
    """`scores`, the novelty of a batch of new photos, against `reference_scores`, the
    held-out photos' (the model's Novelty.val_scores), with the threshold above which a
    photo is called unknown."""
    scores = np.asarray(scores, np.float64)
    scores = scores[np.isfinite(scores)]
    reference = np.asarray(reference_scores, np.float64)
    n, m = len(scores), len(reference)
    unknown = int((scores > threshold).sum())
    reference_unknown = int((reference > threshold).sum())
    if n == 0 or m == 0:
        return ShiftCheck(n, unknown, m, reference_unknown, 1.0, 1.0, None, alpha)
    from scipy.stats import ks_2samp  # here: scipy.stats takes most of a second to import

    return ShiftCheck(n, unknown, m, reference_unknown,
                      _share_p(unknown, n, reference_unknown, m),
                      float(ks_2samp(scores, reference, alternative="less").pvalue),
                      _needs(n, reference_unknown, m, alpha / 2), alpha)


def _share_p(unknown: int, n: int, reference_unknown: int, m: int) -> float:
    from scipy.stats import fisher_exact

    table = [[unknown, n - unknown], [reference_unknown, m - reference_unknown]]
    return float(fisher_exact(table, alternative="greater").pvalue)


@lru_cache(maxsize=1024)  # a server asks again for each window of the same size
def _needs(n: int, reference_unknown: int, m: int, level: float) -> int | None:
    """The fewest unknown photos of n for which the share test falls below `level` (its p
    falls as the count rises: a bisection)."""
    if _share_p(n, n, reference_unknown, m) >= level:
        return None
    low, high = math.floor(n * reference_unknown / m), n  # p(low) >= level > p(high)
    while high - low > 1:
        middle = (low + high) // 2
        if _share_p(middle, n, reference_unknown, m) < level:
            high = middle
        else:
            low = middle
    return high


class ShiftWatch:
    """Novelty scores of answers as they come (a server's), checked `window` at a time.

    Windows do not overlap: testing the last `window` answers after every answer would test
    nearly the same photos again and again, and raise false alarms far more often than
    ALPHA. Thread-safe."""

    def __init__(self, reference_scores: np.ndarray, threshold: float,
                 window: int = WINDOW) -> None:
        if window < MIN_PHOTOS:
            raise ValueError(f"a window of {window} photos: the check needs {MIN_PHOTOS} or more")
        self.reference, self.threshold, self.window = reference_scores, threshold, window
        self.last: ShiftCheck | None = None  # the last whole window's check
        self.answers = 0  # scores added in all
        self._scores: list[float] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Scores in the window being filled."""
        return len(self._scores)

    def add(self, score: float) -> ShiftCheck | None:
        """Record one answer's novelty; the window's check when this score completes it."""
        with self._lock:
            self.answers += 1
            self._scores.append(score)
            if len(self._scores) < self.window:
                return None
            scores, self._scores = self._scores, []
        check = check_shift(np.array(scores), self.reference, self.threshold)
        self.last = check
        return check
