"""The routes every petal page has: the page itself at / and its icon, from serve/static/."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response


def add_static_page(app: FastAPI, page_name: str) -> None:
    """Serve static/`page_name` at / and the favicon at /favicon.svg and /favicon.ico."""
    static = resources.files("petal.serve").joinpath("static")
    page = static.joinpath(page_name).read_text("utf-8")
    icon = static.joinpath("favicon.svg").read_bytes()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(icon, media_type="image/svg+xml")
