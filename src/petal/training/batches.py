"""Batches from the decoded cache: random crops and flips on uint8 arrays, no JPEG decoding.

Augmentation is deterministic given (recipe seed, epoch, position in the epoch), so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class SeededShuffle(Sampler):
    """A fresh permutation each epoch, fixed by (seed, epoch); yields (index, augmentation seed).

    Lightning calls `set_epoch` before every epoch, as it does for DistributedSampler.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        seeds = rng.integers(0, 2**63 - 1, size=self.n)
        return iter(zip(order.tolist(), seeds.tolist()))

    def __len__(self) -> int:
        return self.n


class CachedImages(Dataset):
    """Square uint8 images (N, S, S, 3) cropped to `crop` px; returns (uint8 CHW tensor, label).

    Training keys are (index, seed): a random crop and, with `flip`, a random mirror.
    Evaluation keys are plain indices: the central crop.
    """

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, crop: int,
                 flip: bool = True) -> None:
        if pixels.shape[1] < crop:
            raise ValueError(f"stored images ({pixels.shape[1]} px) are smaller than the "
                             f"crop {crop}")
        self.pixels, self.labels, self.crop, self.flip = pixels, labels, crop, flip

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        side, crop = self.pixels.shape[1], self.crop
        if isinstance(key, tuple):
            index, seed = key
            rng = np.random.default_rng(seed)
            top, left = rng.integers(0, side - crop + 1, size=2)
            mirror = self.flip and rng.random() < 0.5
        else:
            index, top, left, mirror = key, (side - crop) // 2, (side - crop) // 2, False
        image = self.pixels[index, top:top + crop, left:left + crop]
        if mirror:
            image = image[:, ::-1]
        # a copy: the cache is read-only, and a whole-square crop would otherwise be a view of it
        tensor = torch.from_numpy(np.array(image, order="C")).permute(2, 0, 1)
        return tensor, int(self.labels[index])


def train_loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    # drop_last keeps BatchNorm away from a final batch of one image.
    return DataLoader(dataset, batch_size=batch_size, sampler=SeededShuffle(len(dataset), seed),
                      drop_last=len(dataset) > batch_size)


def eval_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)
