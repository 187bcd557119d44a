"""The web API and page for one or more loaded models.

    GET  /               the page: pick or drop a photo, see each model's top-k side by side
    GET  /api/models     the models: name, architecture, classes, input spec, accuracy (how
                         measured, value, photos, interval)
    POST /api/predict    multipart field `file` (one); ?model=NAME (default: all), ?top_k=N,
                         ?explain=true (heat maps, off by default: the plain answer stays fast)
    GET  /api/shift      per model: whether the photos it answers are less like its training
                         photos than the held-out photos behind its figures, checked a window
                         of `shift_window` answers at a time (petal.inference.shift)
    GET  /healthz        {"status": "ok"}

/api/predict answers {"predictions": [{"model": NAME, "unknown": bool, "novelty": float,
"top_k": [{"label", "probability"}, ...] (most probable first), "ms": time of the forward
pass, "batch": images in it, with explain "explanation": a PNG data URI}, ...]}.
Errors answer {"detail": "a readable message"}: 404 unknown model, 408 a body that stalls,
413 upload over the limit or too many pixels, 415 not an image, 422 undecodable image, bad
parameters or more than one `file` field, 503 (with Retry-After) when `queue_size` uploads
are already being decoded or waiting for inference and no place frees within `queue_wait_s`.
Uploads are decoded on a small thread pool (those over LARGE_IMAGE_PIXELS on a thread of
their own) and run on the one inference thread (petal.serve.worker); the event loop only
moves bytes.
Connections are guarded below the app, in petal.serve.server.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.datastructures import State

from petal.data.image import ImageLoadError, open_image
from petal.inference.classifier import Classifier
from petal.inference.explain import explain_answer, overlay
from petal.inference.shift import WINDOW, ShiftWatch
from petal.models.spec import InputSpec
from petal.serve.limits import BodyLimit, image_error, too_large
from petal.serve.served import ServedModel
from petal.serve.static_page import add_static_page
from petal.serve.worker import Busy, InferenceWorker, Result


@dataclass(frozen=True)
class ServeOptions:
    max_upload_bytes: int = 10 * 2**20
    top_k: int = 5
    max_batch: int = 16  # images per forward pass; 1 turns micro-batching off
    batch_wait_ms: float = 0.0  # how long a batch waits for more images; 0: take what is queued
    queue_size: int = 64  # uploads being decoded or waiting for inference at once
    queue_wait_s: float = 5.0  # how long an upload waits for one of those places before 503
    decode_threads: int = 2
    body_idle_s: float = 15.0  # an upload that sends nothing for this long gets 408 ...
    body_deadline_s: float = 120.0  # ... and so does one not complete by then (10 MiB: 0.7 Mbit/s)
    shift_window: int = WINDOW  # answers checked at a time for photos unlike the training ones


# Uploads over this many pixels decode on one thread of their own, at the lowest CPU
# priority: one 64-megapixel decode takes up to ~0.8 GB and a second of CPU, and the
# memory glibc keeps for reuse is per thread, so two decode threads would hold twice that.
LARGE_IMAGE_PIXELS = 16_000_000


def _lowest_priority() -> None:
    """Run the calling thread at nice 19 where the OS can (Linux: per-thread priority)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


log = logging.getLogger(__name__)


def busy() -> HTTPException:
    return HTTPException(503, "server busy: too many images waiting; retry shortly",
                         headers={"Retry-After": "1"})


def prepare_all(data: bytes, classifiers: list[Classifier]) -> list[np.ndarray]:
    """The upload as each model sees it, decoded once per distinct input spec."""
    arrays: dict[InputSpec, np.ndarray] = {}
    for classifier in classifiers:
        if classifier.spec not in arrays:
            arrays[classifier.spec] = classifier.prepare(data)
    return [arrays[classifier.spec] for classifier in classifiers]


def pixel_count(data: bytes) -> int:
    """The pixels an upload's header claims (nothing decoded); ImageLoadError if unusable."""
    width, height = open_image(data).size
    return width * height


def warm_up(models: list[ServedModel]) -> None:
    """One blank image through each model, so the first request is not the slow first call."""
    for served in models:
        size = served.classifier.spec.size
        served.classifier.answer(np.zeros((1, size, size, 3), np.uint8))


def answer(classifier: Classifier, result: Result, k: int) -> dict:
    """One model's answer for one image: unknown or not, its novelty, the k most probable
    labels (highest first)."""
    prediction = classifier.top_k(result.answer, [""], k)[0].to_json()
    return {key: prediction[key] for key in ("unknown", "novelty", "top_k")}


def watch_for(classifier: Classifier, window: int) -> ShiftWatch | None:
    """A ShiftWatch over the model's answers; None when its answers cannot be checked
    (Classifier.shift_unavailable)."""
    if classifier.shift_unavailable:
        return None
    return ShiftWatch(classifier.novelty.val_scores, classifier.novelty.threshold, window)


def record_novelty(served: ServedModel, watch: ShiftWatch | None, result: Result) -> None:
    """One answer into the model's watch; a completed window is logged, a warning when its
    photos differ."""
    if watch is None or result.answer.novelty is None:
        return
    check = watch.add(float(result.answer.novelty[0]))
    if check is not None:
        log.log(logging.WARNING if check.shifted else logging.INFO,
                f"{served.name}: {check.message()}")


def _readable(exc: RequestValidationError) -> str:
    messages = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part not in ("body", "query"))
        if where == "file" and error["type"] == "missing":
            messages.append("no file: send the image as the multipart form field 'file'")
        else:
            messages.append(f"{where}: {error['msg']}")
    return "; ".join(messages)


def create_app(models: list[ServedModel], options: ServeOptions = ServeOptions()) -> FastAPI:
    by_name = {model.name: model for model in models}
    watches = {model.name: watch_for(model.classifier, options.shift_window) for model in models}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.worker = InferenceWorker(options.max_batch, options.batch_wait_ms / 1000,
                                           options.queue_size * len(models))
        app.state.places = asyncio.Semaphore(options.queue_size)
        app.state.decoder = ThreadPoolExecutor(options.decode_threads, "petal-decode")
        app.state.large_decoder = ThreadPoolExecutor(1, "petal-decode-large",
                                                     initializer=_lowest_priority)
        app.state.worker.start()
        warm_up(models)
        try:
            yield
        finally:
            app.state.worker.stop()
            app.state.decoder.shutdown()
            app.state.large_decoder.shutdown()

    app = FastAPI(title="petal", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_upload_bytes=options.max_upload_bytes,
                       idle_s=options.body_idle_s, deadline_s=options.body_deadline_s)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _readable(exc)}, status_code=422)

    add_static_page(app, "index.html")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "models": len(models)}

    @app.get("/api/models")
    async def list_models() -> dict:
        return {"models": [model.describe() for model in models],
                "max_upload_bytes": options.max_upload_bytes, "top_k": options.top_k}

    @app.get("/api/shift")
    async def shift() -> dict:
        return {"window": options.shift_window, "models": [
            {"name": name, "pending": None if watch is None else watch.pending,
             "answers": None if watch is None else watch.answers,
             "unavailable": by_name[name].classifier.shift_unavailable,
             "last": None if watch is None or watch.last is None
             else {**watch.last.to_json(), "message": watch.last.message()}}
            for name, watch in watches.items()]}

    @app.post("/api/predict")
    async def predict(
        request: Request,
        file: Annotated[UploadFile, File(description="the image")],
        model: Annotated[str | None, Query(description="one model's name; default all")] = None,
        top_k: Annotated[int, Query(ge=1, le=1000)] = options.top_k,
        explain: Annotated[bool, Query(description="add each model's heat map")] = False,
    ) -> dict:
        files = len((await request.form()).getlist("file"))  # parsed already, for `file`
        if files != 1:
            raise HTTPException(422, f"{files} 'file' fields: send one image per request")
        if model is not None and model not in by_name:
            raise HTTPException(404, f"unknown model {model!r}: the models are "
                                f"{', '.join(by_name)} (GET /api/models)")
        chosen = [by_name[model]] if model else models
        places: asyncio.Semaphore = request.app.state.places
        try:  # a place first, then the upload in memory: waiting uploads stay spooled
            await asyncio.wait_for(places.acquire(), options.queue_wait_s)
        except TimeoutError:
            raise busy() from None
        try:
            data = await file.read(options.max_upload_bytes + 1)
            if len(data) > options.max_upload_bytes:
                raise HTTPException(413, too_large(options.max_upload_bytes))
            arrays, results = await _infer(request.app.state, data, chosen)
            pictures = [{}] * len(chosen)
            if explain:  # drawn on the decode pool: the event loop only moves bytes
                pictures = await asyncio.get_running_loop().run_in_executor(
                    request.app.state.decoder, explanations, chosen, arrays, results)
        finally:
            places.release()
        for served, result in zip(chosen, results):
            record_novelty(served, watches[served.name], result)
        return {"predictions": [
            {"model": served.name, **answer(served.classifier, result, top_k), **picture,
             "ms": round(result.ms, 2), "batch": result.batch}
            for served, result, picture in zip(chosen, results, pictures)]}

    return app


def explanations(chosen: list[ServedModel], arrays: list[np.ndarray], results: list[Result]
                 ) -> list[dict]:
    """Each model's heat map of its top class over the image as it saw it, as a PNG data URI
    ("explanation": null for a model without class activation maps)."""
    pictures = []
    for served, array, result in zip(chosen, arrays, results):
        if result.answer.maps is None:
            pictures.append({"explanation": None})
            continue
        heat = explain_answer(served.classifier, result.answer).heat[0]
        buffer = io.BytesIO()
        Image.fromarray(overlay(array, heat)).save(buffer, "PNG")
        pictures.append({"explanation": "data:image/png;base64,"
                                        + base64.b64encode(buffer.getvalue()).decode()})
    return pictures


async def _infer(state: State, data: bytes, chosen: list[ServedModel]
                 ) -> tuple[list[np.ndarray], list[Result]]:
    """Decode the upload on the decode pool, then run it through each chosen model."""
    loop = asyncio.get_running_loop()
    classifiers = [served.classifier for served in chosen]
    try:
        large = await loop.run_in_executor(state.decoder, pixel_count, data) > LARGE_IMAGE_PIXELS
        decoder = state.large_decoder if large else state.decoder
        arrays = await loop.run_in_executor(decoder, prepare_all, data, classifiers)
    except ImageLoadError as exc:
        raise image_error(exc) from exc
    futures: list[asyncio.Future] = []
    try:
        for classifier, array in zip(classifiers, arrays):
            futures.append(state.worker.submit(classifier, array))
        return arrays, await asyncio.gather(*futures)
    except Busy:
        for future in futures:
            future.cancel()
        raise busy() from None
    except Exception as exc:
        raise HTTPException(500, f"inference failed: {exc}") from exc
