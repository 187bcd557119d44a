"""One inference thread per server: requests wait in a bounded queue and run in micro-batches.

Models are never run by two threads at once (each engine already uses every core for one
batch), and the event loop never runs a model. Each time the thread picks a job it also
takes the jobs queued behind it, up to `max_batch`, waiting at most `wait_s` for more,
and runs them per model as one batch: under load several images share one forward pass;
alone, an image runs at once (with the default wait of 0). A full queue refuses new jobs
(`Busy`) instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from petal.inference.classifier import Answer, Classifier


class Busy(Exception):
    """The inference queue is full."""


@dataclass(frozen=True)
class Result:
    answer: Answer  # the model's answer for this one image (a batch of one)
    ms: float  # time of the forward pass this image was part of
    batch: int  # images in that forward pass


@dataclass(frozen=True)
class _Job:
    classifier: Classifier
    array: np.ndarray  # (size, size, 3) uint8, as Classifier.prepare returns
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future, result: Result | None, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class InferenceWorker:
    def __init__(self, max_batch: int = 16, wait_s: float = 0.0, queue_size: int = 64) -> None:
        self.max_batch, self.wait_s = max_batch, wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="petal-inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def submit(self, classifier: Classifier, array: np.ndarray) -> asyncio.Future:
        """Queue one image for one model (from the event loop); raises Busy when full."""
        loop = asyncio.get_running_loop()
        job = _Job(classifier, array, loop.create_future(), loop)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy from None
        return job.future

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and the jobs behind it; True when the stop marker was among them."""
        jobs = [first]
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else \
                    self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            jobs, stopping = self._collect(first)
            groups: dict[int, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(id(job.classifier), []).append(job)
            for group in groups.values():
                self._run_group(group)

    @staticmethod
    def _run_group(jobs: list[_Job]) -> None:
        start = time.perf_counter()
        try:
            answer = jobs[0].classifier.answer(np.stack([j.array for j in jobs]))
        except Exception as exc:  # reported to each waiting request; the thread lives on
            for job in jobs:
                job.loop.call_soon_threadsafe(_settle, job.future, None, exc)
            return
        ms = (time.perf_counter() - start) * 1000
        for i, job in enumerate(jobs):
            result = Result(answer.row(i), ms, len(jobs))
            job.loop.call_soon_threadsafe(_settle, job.future, result, None)
