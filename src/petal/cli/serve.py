"""Serve models over HTTP: a page at / and POST /api/predict. A model is named after its run
folder, or NAME=PATH names it.
"""

from __future__ import annotations

import argparse

from petal.cli.common import add_device, add_rejection, apply_rejection
from petal.errors import PetalError


def add_commands(verbs: argparse._SubParsersAction) -> None:
    serve = verbs.add_parser(
        "serve", help="web page and JSON API for one or more models",
        description=__doc__)
    serve.add_argument("models", nargs="+", metavar="MODEL",
                       help="run folder, model folder or .onnx file; NAME=PATH to name it")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: "
                            "the network too, a phone say, and then every request needs the "
                            "token in the address petal prints, or $PETAL_TOKEN)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument("--engine", choices=("torch", "onnx"),
                       help="default: onnx, through each model folder's own export (made "
                            "once, kept beside the weights), torch for a network explained by "
                            "Grad-CAM or one that cannot be exported")
    add_device(serve)
    serve.add_argument("--max-upload-mb", type=float, default=10.0,
                       help="largest accepted upload (default 10)")
    serve.add_argument("--top-k", type=int, default=5, help="labels per model by default")
    serve.add_argument("--max-batch", type=int, default=16,
                       help="most images per forward pass when requests queue up (1: no batching)")
    serve.add_argument("--batch-wait-ms", type=float, default=0.0,
                       help="wait this long for more images before a forward pass (default 0)")
    serve.add_argument("--shift-window", type=int, default=100, metavar="N",
                       help="check every N answers of a model for photos less like its "
                            "training photos than its held-out ones (default 100; GET "
                            "/api/shift, and a warning in the log)")
    add_rejection(serve)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from petal.inference.device import describe_device
    from petal.inference.shift import MIN_PHOTOS
    from petal.serve.app import ServeOptions, create_app
    from petal.serve.local_page import TokenRequired
    from petal.serve.network import chosen_token, is_loopback, page_address, qr_code
    from petal.serve.served import load_models
    from petal.serve.server import bind, serve_forever, url_of

    if args.max_upload_mb <= 0 or args.top_k < 1 or args.max_batch < 1:
        raise PetalError("--max-upload-mb must be > 0, --top-k and --max-batch >= 1")
    if not MIN_PHOTOS <= args.shift_window <= 1_000_000:
        raise PetalError(f"--shift-window must be between {MIN_PHOTOS} (fewer photos say "
                         "little) and 1000000 (a window that never fills checks nothing)")
    token = None if is_loopback(args.host) else chosen_token()  # $PETAL_TOKEN checked first
    sock = bind(args.host, args.port)  # before loading: a busy port fails fast
    models = load_models(args.models, engine=args.engine, device=args.device)
    for served in models:
        apply_rejection(served.classifier, args)
    options = ServeOptions(max_upload_bytes=round(args.max_upload_mb * 2**20), top_k=args.top_k,
                           max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                           shift_window=args.shift_window)
    served = ", ".join(f"{m.name} ({m.classifier.engine} on "
                       f"{describe_device(m.classifier.device)})" for m in models)

    app = create_app(models, options)
    if token is not None:  # every request needs it (petal.serve.network)
        app = TokenRequired(app, token, loopback_only=False)

    def say_address() -> None:  # once it answers
        if token is None:
            print(f"Serving {served} at {url_of(sock)} (Ctrl-C stops)")
            print(f"Bound to {args.host}: only this machine can reach it "
                  "(--host 0.0.0.0 exposes it to the network).", flush=True)
            return
        address = page_address(sock, token)
        print(f"Serving {served} to the network (Ctrl-C stops). Open on a phone on the same "
              f"network:\n  {address}\nEvery request needs that token (the page sends it; a "
              "script gives the X-Petal-Token header).")
        print(qr_code(address) or "(pip install segno to show the address as a QR code)",
              flush=True)

    serve_forever(app, sock, ready=say_address, log_level="info" if token is None
                  else "warning")
    return 0
