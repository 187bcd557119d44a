"""The order in which to label unlabelled photos: margin sampling over a k-center cover.

Labelling helps a model most where it hesitates (Scheffer et al. 2001: the smallest margin
between its two most probable classes) and where its labelled photos do not yet reach
(Sener and Savarese 2018: the k-center "core set", the photo farthest from every labelled
one). Margin alone picks near-copies of one confusing photo in a batch; distance alone picks
outliers the model is already sure of. So each batch is taken as Zhdanov (2019, "Diverse
mini-batch active learning") does: the `POOL_FACTOR` x batch photos of smallest margin, and
from them, greedily, the one farthest from the labelled photos and the ones already picked;
a batch is then listed least sure first. (With fewer photos than the pool, the first batch
is a k-center cover of them all.)
Distances are between L2-normalised penultimate features, the space petal's novelty score
measures in. Written here (a few lines of numpy): the libraries that offer it (modAL, baal)
wrap the model and a training loop of their own, and petal's loop is Lightning's.
"""

from __future__ import annotations

import numpy as np

from petal.inference.novelty import l2_normalised

BATCH = 50  # photos a person labels before retraining
POOL_FACTOR = 4  # a batch is chosen among this many times as many uncertain photos
CHUNK = 1024  # rows of a distance matrix computed at once


def margins(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class's probability minus the second's: small = unsure."""
    if probabilities.shape[1] < 2:
        return np.zeros(len(probabilities), np.float32)
    top = np.sort(probabilities, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def nearest_distance(queries: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each normalised query row's distance to its nearest normalised centre row (inf if no
    centre)."""
    if len(centres) == 0:
        return np.full(len(queries), np.inf, np.float32)
    nearest = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), CHUNK):
        similarity = queries[start:start + CHUNK] @ centres.T
        nearest[start:start + CHUNK] = np.sqrt(np.clip(2 - 2 * similarity.max(axis=1), 0, None))
    return nearest


def queue_order(probabilities: np.ndarray, features: np.ndarray, labelled: np.ndarray,
                batch: int = BATCH, pool_factor: int = POOL_FACTOR) -> np.ndarray:
    """Every photo's index, in the order to label them (module docstring).

    probabilities (N, classes) and features (N, D) are the model's for the unlabelled photos;
    labelled (M, D) the features of the photos it was trained on (M may be 0).
    """
    points = l2_normalised(features.astype(np.float32))
    nearest = nearest_distance(points, l2_normalised(labelled.astype(np.float32)))
    uncertainty = margins(probabilities)
    waiting = list(np.argsort(uncertainty, kind="stable"))  # least sure first
    order: list[int] = []
    while waiting:
        pool = np.array(waiting[:pool_factor * batch])
        reach = nearest[pool].copy()
        picked = []
        for _ in range(min(batch, len(pool))):
            best = int(np.argmax(reach))  # the first of equals: the least sure
            picked.append(int(pool[best]))
            reach = np.minimum(reach, np.linalg.norm(points[pool] - points[pool[best]], axis=1))
            reach[best] = -1.0
        order += sorted(picked, key=lambda i: uncertainty[i])  # the least sure first
        taken = set(picked)
        waiting = [i for i in waiting if i not in taken]
        nearest = np.minimum(nearest, nearest_distance(points, points[picked]))
    return np.array(order, int)


def queue_with_unknown_last(probabilities: np.ndarray, features: np.ndarray,
                            labelled: np.ndarray, novelty: np.ndarray | None,
                            threshold: float) -> np.ndarray:
    """queue_order of the photos the model does not call unknown, then those it does (novelty
    above `threshold`), most novel first: likely of none of its classes, they would spend a
    batch meant for the model's hesitations, and they are confirmed "none" apart."""
    unknown = (np.zeros(len(probabilities), bool) if novelty is None
               else np.asarray(novelty) > threshold)
    known = np.flatnonzero(~unknown)
    strange = np.flatnonzero(unknown)
    ranked = known[queue_order(probabilities[known], features[known], labelled)]
    return np.concatenate([ranked, strange[np.argsort(-novelty[strange], kind="stable")]
                           if len(strange) else strange]).astype(int)
