"""The web API against a real uvicorn server on a free 127.0.0.1 port, and its parts."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import petal
from conftest import pattern
from petal.inference.classifier import Classifier
from petal.inference.export import export
from petal.inference.model_folder import ModelCard
from petal.models.spec import InputSpec
from petal.serve.app import ServeOptions, create_app
from petal.serve.served import default_name, load_models, split_name, unique
from petal.serve.server import BackgroundServer
from petal.serve.worker import Busy, InferenceWorker

LIMIT = 256 * 1024  # the test server's --max-upload-mb, in bytes


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb's shape."""
    data = bytearray(encoded(Image.new("1", (8, 8)), "PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


PHOTO = encoded(pattern(7, size=(120, 90)), "JPEG", quality=90)


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny model twice: on torch ("tiny") and exported, on ONNX Runtime ("tiny-onnx")."""
    onnx_path = export(tiny_run, out=tmp_path_factory.mktemp("serve") / "tiny.onnx").path
    models = (load_models([f"tiny={tiny_run}"], engine="torch")
              + load_models([f"tiny-onnx={onnx_path}"]))
    with BackgroundServer(create_app(models, ServeOptions(max_upload_bytes=LIMIT))) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "models": 2}


def test_models(client: httpx.Client, tiny_run: Path) -> None:
    body = client.get("/api/models").json()
    card = petal.load(tiny_run).card
    assert [m["name"] for m in body["models"]] == ["tiny", "tiny-onnx"]
    assert [m["engine"] for m in body["models"]] == ["torch", "onnx"]
    for model in body["models"]:
        assert model["architecture"] == "resnet9"
        assert model["classes"] == ["cat", "dog", "fox"]
        assert model["input"] == card.input.to_json()
        assert model["val_acc"] == card.metrics["val_acc"]
        assert model["n_val"] == card.metrics["n_val"] and len(model["val_interval"]) == 2
    assert body["max_upload_bytes"] == LIMIT and body["top_k"] == 5


def test_favicon(client: httpx.Client) -> None:
    for path in ("/favicon.ico", "/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200 and response.content.startswith(b"<svg")


def test_page(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'type="file"' in response.text and "api/predict" in response.text


def test_predict_every_model(client: httpx.Client, tiny_run: Path) -> None:
    response = client.post("/api/predict", files={"file": ("photo.jpg", PHOTO, "image/jpeg")})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["model"] for p in predictions] == ["tiny", "tiny-onnx"]
    expected = petal.load(tiny_run).predict(PHOTO)
    for prediction in predictions:
        probabilities = [entry["probability"] for entry in prediction["top_k"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert [entry["label"] for entry in prediction["top_k"]] == expected.labels
        assert np.allclose(probabilities, expected.probabilities, atol=1e-5)
        assert prediction["ms"] > 0 and prediction["batch"] >= 1


def test_a_phones_heic_is_answered_as_its_jpeg_is(client: httpx.Client, tiny_run: Path) -> None:
    photo = Image.open(io.BytesIO(PHOTO)).convert("RGB").resize((400, 300))
    heic = encoded(photo, "HEIF", quality=95)
    response = client.post("/api/predict", params={"model": "tiny"},
                           files={"file": ("IMG_0001.HEIC", heic, "image/heic")})
    assert response.status_code == 200, response.text
    expected = petal.load(tiny_run).predict(encoded(photo, "PNG"))
    said = {e["label"]: e["probability"] for e in response.json()["predictions"][0]["top_k"]}
    assert said.keys() == set(expected.labels)  # the photo, not noise: as close as the
    assert all(abs(said[label] - p) < 0.05  # lossy HEIC lets it be
               for label, p in zip(expected.labels, expected.probabilities))


def test_predict_one_model_top_k(client: httpx.Client) -> None:
    response = client.post("/api/predict", params={"model": "tiny-onnx", "top_k": 2},
                           files={"file": ("photo.jpg", PHOTO)})
    predictions = response.json()["predictions"]
    assert [p["model"] for p in predictions] == ["tiny-onnx"]
    assert len(predictions[0]["top_k"]) == 2


def test_explain_adds_each_models_heat_map(client: httpx.Client, tiny_run: Path) -> None:
    plain = client.post("/api/predict", files={"file": ("photo.jpg", PHOTO)}).json()
    assert all("explanation" not in p for p in plain["predictions"])
    explained = client.post("/api/predict", params={"explain": "true"},
                            files={"file": ("photo.jpg", PHOTO)}).json()["predictions"]
    size = petal.load(tiny_run).spec.size
    for prediction in explained:  # torch and ONNX Runtime alike
        header, data = prediction["explanation"].split(",", 1)
        assert header == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as picture:
            assert picture.size == (size, size) and picture.mode == "RGB"


def test_upload_of_exactly_the_limit_is_read(client: httpx.Client) -> None:
    data = PHOTO + b"\0" * (LIMIT - len(PHOTO))  # trailing bytes after a JPEG are ignored
    response = client.post("/api/predict", files={"file": ("padded.jpg", data)})
    assert response.status_code == 200, response.text


def chunked_upload(size: int) -> Iterator[bytes]:
    """A multipart body of `size` file bytes, sent without Content-Length."""
    yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
           b"Content-Type: image/jpeg\r\n\r\n")
    for _ in range(size // 65536):
        yield bytes(65536)
    yield b"\r\n--b--\r\n"


BAD_REQUESTS: dict[str, tuple[dict, int, str]] = {
    "not an image": ({"files": {"file": ("notes.txt", b"hello, world\n", "text/plain")}},
                     415, "not an image"),
    "unsupported mode": ({"files": {"file": ("f.tif", encoded(Image.new("F", (8, 8)), "TIFF"))}},
                         415, "unsupported pixel mode"),
    "truncated": ({"files": {"file": ("cut.jpg", PHOTO[: len(PHOTO) // 2])}}, 422, "truncated"),
    "empty file": ({"files": {"file": ("empty.jpg", b"")}}, 422, "empty"),
    "decompression bomb": ({"files": {"file": ("bomb.png", png_claiming(20_000, 20_000))}},
                           413, "decompression bomb"),
    "one byte over": ({"files": {"file": ("big.jpg", bytes(LIMIT + 1))}}, 413, "too large"),
    "far over, by Content-Length": ({"files": {"file": ("big.jpg", bytes(8 * LIMIT))}}, 413,
                                    "too large"),
    "far over, chunked": ({"content": chunked_upload(4 * LIMIT),
                                 "headers": {"content-type": "multipart/form-data; boundary=b"}},
                                413, "too large"),
    "no file part": ({"data": {"photo": "rose.jpg"}}, 422, "no file"),
    "no body": ({}, 422, "no file"),
    "two files": ({"files": [("file", ("a.jpg", PHOTO)), ("file", ("b.jpg", PHOTO))]}, 422,
                  "2 'file' fields: send one image per request"),
    "unknown model": ({"params": {"model": "nope"}, "files": {"file": ("a.jpg", PHOTO)}},
                      404, "unknown model 'nope'"),
    "top_k zero": ({"params": {"top_k": 0}, "files": {"file": ("a.jpg", PHOTO)}}, 422, "top_k"),
    "top_k text": ({"params": {"top_k": "all"}, "files": {"file": ("a.jpg", PHOTO)}}, 422,
                   "top_k"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request(client: httpx.Client, case: str) -> None:
    kwargs, status, message = BAD_REQUESTS[case]
    response = client.post("/api/predict", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


DECODERS = {f"petal-decode_{i}" for i in range(ServeOptions().decode_threads)}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_bad_requests_leave_the_server_healthy(server: str) -> None:
    """A concurrent burst of bad uploads leaves no thread or file open, and good ones work."""
    with httpx.Client(base_url=server, timeout=30) as client:
        client.post("/api/predict", files={"file": ("a.jpg", PHOTO)})  # pools started
    threads, fds = {t.name for t in threading.enumerate()}, _open_fds()
    cases = [case for case in BAD_REQUESTS if "chunked" not in case] * 4

    def send(case: str) -> int:
        kwargs, _, _ = BAD_REQUESTS[case]
        with httpx.Client(base_url=server, timeout=30) as client:
            return client.post("/api/predict", **kwargs).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, cases))
    assert statuses == [BAD_REQUESTS[case][1] for case in cases]
    with httpx.Client(base_url=server, timeout=30) as client:
        assert client.post("/api/predict", files={"file": ("a.jpg", PHOTO)}).status_code == 200
    assert _wait_for(lambda: {t.name for t in threading.enumerate()} - threads <= DECODERS)
    assert _wait_for(lambda: _open_fds() <= fds), "uploads or connections were left open"


def test_concurrent_requests_all_answered(client: httpx.Client, server: str) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server, timeout=30) as session:
            return await asyncio.gather(*[
                session.post("/api/predict", files={"file": ("a.jpg", PHOTO)})
                for _ in range(24)])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 24
    first = responses[0].json()["predictions"][0]["top_k"]
    for response in responses:  # the same photo, whatever batch it shared: the same answer
        top_k = response.json()["predictions"][0]["top_k"]
        assert [e["label"] for e in top_k] == [e["label"] for e in first]
        assert np.allclose([e["probability"] for e in top_k],
                           [e["probability"] for e in first], atol=1e-5)


# The inference worker alone, with a model whose speed the test controls.

def fake_classifier(run_batch: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
                    ) -> Classifier:
    card = ModelCard(architecture={"name": "fake"}, classes=["a", "b"],
                     input=InputSpec(size=4, mean=(0.5,) * 3, std=(0.5,) * 3))
    return Classifier(card, run_batch, "fake")


class GatedModel:
    """run_batch records batch sizes and blocks until the gate opens."""

    def __init__(self, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.started, self.gate, self.fail = threading.Event(), threading.Event(), fail

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        self.started.set()
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("model exploded")
        return np.zeros((len(batch), 2), np.float32), np.zeros((len(batch), 3), np.float32)


IMAGE = np.zeros((4, 4, 3), np.uint8)


def test_worker_batches_what_queued_while_busy() -> None:
    async def scenario() -> list:
        model = GatedModel()
        classifier = fake_classifier(model)
        worker = InferenceWorker(max_batch=4, queue_size=8)
        worker.start()
        try:
            first = worker.submit(classifier, IMAGE)
            await asyncio.to_thread(model.started.wait, 10)
            rest = [worker.submit(classifier, IMAGE) for _ in range(5)]
            model.gate.set()
            results = await asyncio.gather(first, *rest)
        finally:
            worker.stop()
        assert model.sizes == [1, 4, 1]
        return results

    results = asyncio.run(scenario())
    assert [r.batch for r in results] == [1, 4, 4, 4, 4, 1]
    assert np.allclose(results[0].answer.probabilities, [[0.5, 0.5]])


def test_worker_refuses_when_queue_full_and_survives_errors() -> None:
    async def scenario() -> None:
        model = GatedModel(fail=True)
        worker = InferenceWorker(max_batch=1, queue_size=2)
        worker.start()
        try:
            first = worker.submit(fake_classifier(model), IMAGE)
            await asyncio.to_thread(model.started.wait, 10)
            queued = [worker.submit(fake_classifier(model), IMAGE) for _ in range(2)]
            with pytest.raises(Busy):
                worker.submit(fake_classifier(model), IMAGE)
            model.gate.set()
            for future in [first, *queued]:
                with pytest.raises(RuntimeError, match="exploded"):
                    await future
            model.fail = False
            assert (await worker.submit(fake_classifier(model), IMAGE)).batch == 1
        finally:
            worker.stop()

    asyncio.run(scenario())


def test_model_names(tmp_path: Path) -> None:
    (tmp_path / "rose-r9" / "model").mkdir(parents=True)
    onnx_file = tmp_path / "rose-r9" / "model" / "model.onnx"
    onnx_file.touch()
    (tmp_path / "lite.onnx").touch()
    assert default_name(tmp_path / "rose-r9") == "rose-r9"
    assert default_name(tmp_path / "rose-r9" / "model") == "rose-r9"
    assert default_name(onnx_file) == "rose-r9"
    assert default_name(tmp_path / "lite.onnx") == "lite"
    assert split_name("r34=runs/a") == ("r34", Path("runs/a"))
    assert split_name("runs/a=b/c") == (None, Path("runs/a=b/c"))
    assert unique(["run", "run", "other"]) == ["run", "run-2", "other"]


# The command line.

def test_cli_serves_until_interrupted(tiny_run: Path) -> None:
    petal_cmd = Path(sys.executable).with_name("petal")
    process = subprocess.Popen([str(petal_cmd), "serve", str(tiny_run), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        while lines[-1] and "Bound to" not in lines[-1]:
            lines.append(process.stdout.readline())
        output = "".join(lines)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", output)
        assert match and "only this machine can reach it" in output, output
        assert _healthy(match[1])  # the address is printed once the server answers
        models = httpx.get(f"{match[1]}/api/models").json()["models"]
        assert [m["name"] for m in models] == ["run"]  # the run folder's name
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130  # petal's exit status for Ctrl-C, after a clean shutdown
        assert "Finished server process" in process.stdout.read()
    finally:
        process.kill()
        process.stdout.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_a_bound_port_is_held_until_served() -> None:
    """bind() listens at once: the port cannot be taken while petal works before serving
    (as another program with SO_REUSEADDR could take a port bound but not listened on)."""
    from petal.serve.server import bind

    held = bind("127.0.0.1", 0)
    try:
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other.bind(held.getsockname())
        with socket.create_connection(held.getsockname(), timeout=5):
            pass  # a client waits in the queue instead of being refused
    finally:
        held.close()


def test_cli_port_in_use(tiny_run: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(Path(sys.executable).with_name("petal")), "serve",
                               str(tiny_run), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot listen" in done.stderr and "--port" in done.stderr


def test_served_to_the_network_every_request_needs_the_token(tiny_run: Path) -> None:
    """--host 0.0.0.0: the address to open on a phone, with its token and a QR code; every
    request but /healthz refused without the token, which the API takes as a header."""
    token = "a-token-for-this-test-only"
    process = subprocess.Popen([str(Path(sys.executable).with_name("petal")), "serve",
                                str(tiny_run), "--host", "0.0.0.0", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PETAL_TOKEN": token})
    try:
        lines = [process.stdout.readline()]
        while lines[-1] and "X-Petal-Token" not in lines[-1]:
            lines.append(process.stdout.readline())
        lines += [process.stdout.readline() for _ in range(3)]  # the QR code's first rows
        output = "".join(lines)
        match = re.search(rf"http://[^:/\s]+:(\d+)/\?token={token}", output)
        assert match and "Open on a phone" in output, output
        assert any(block in output for block in "█▀▄"), output  # the QR code, drawn
        url = f"http://127.0.0.1:{match[1]}"
        assert _healthy(url)  # open: a load balancer's probe has no token
        assert httpx.get(f"{url}/api/models").status_code == 403
        assert httpx.get(f"{url}/").status_code == 403
        assert httpx.get(f"{url}/api/models", headers={"X-Petal-Token": "wrong"}
                         ).status_code == 403
        assert httpx.get(f"{url}/api/models", headers={"X-Petal-Token": token}
                         ).status_code == 200
        assert httpx.get(f"{url}/?token={token}").status_code == 200
        photo = encoded(Image.new("RGB", (40, 40), (200, 30, 30)), "PNG")
        assert httpx.post(f"{url}/api/predict", files={"file": ("a.png", photo)}
                          ).status_code == 403
        said = httpx.post(f"{url}/api/predict", files={"file": ("a.png", photo)},
                          headers={"Authorization": f"Bearer {token}"})
        assert said.status_code == 200 and said.json()["predictions"]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
    finally:
        process.kill()
        process.stdout.close()


def test_a_token_too_short_to_keep_anyone_out_is_refused(tiny_run: Path) -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("petal")), "serve",
                           str(tiny_run), "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PETAL_TOKEN": "short"})
    assert done.returncode == 1 and "PETAL_TOKEN must be at least 16" in done.stderr


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("LOCALHOST", True), ("localhost.", True),
    ("::1", True), ("[::1]", True), ("127.0.0.2", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("myhost", False)])
def test_what_counts_as_this_machine_alone(host: str, loopback: bool) -> None:
    from petal.serve.network import is_loopback

    assert is_loopback(host) is loopback


def test_the_printed_address_carries_any_token_intact() -> None:
    from petal.serve.local_page import TokenRequired
    from petal.serve.network import page_address

    token = "a+b&c#d%41e=f/g-long-enough"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = page_address(sock, token)
    query = address.split("?", 1)[1].encode()
    guard = TokenRequired(None, token, loopback_only=False)
    scope = {"type": "http", "path": "/", "query_string": query,
             "headers": [(b"host", b"192.168.1.5:8000")]}
    assert guard.problem(scope) is None
    assert guard.problem({**scope, "query_string": b"token=" + token.encode()}) is not None
