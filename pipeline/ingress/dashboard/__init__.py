"""The operator's dashboard at /dashboard: a static page that draws promptbus's own APIs.

The page (HTML, its script and the vendored uPlot chart library) holds no data and is open
to every caller; what it shows comes from `GET /v1/usage` and `GET /dashboard/api/overview`,
which answer only the admin key once API keys are required (the page then asks for it and
sends it as a bearer token). On the embedded default (loopback, no keys) it is all open.
"""

from pathlib import Path
from typing import Final

from aiohttp import web

from pipeline.errors import NotFound
from pipeline.ingress.dashboard.overview import get_overview
from pipeline.ingress.metrics_route import admin_once_keys_are_required

STATIC: Final = Path(__file__).resolve().parent / "static"
# The files the page loads, and their types: nothing else under static/ is served.
_TYPES: Final = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
}
# The page loads nothing from elsewhere and runs no inline script.
_SECURITY: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def add_routes(app: web.Application) -> None:
    """The page, its files and the overview API."""
    files = {name: (STATIC / name).read_bytes() for name in _TYPES}
    page = (STATIC / "index.html").read_bytes()

    async def get_page(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", headers=_SECURITY)

    async def get_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise NotFound(f"no dashboard file {name!r}")
        return web.Response(body=files[name], content_type=_TYPES[name], headers=_SECURITY)

    app.router.add_get("/dashboard", get_page)
    app.router.add_get("/dashboard/static/{name}", get_file)
    app.router.add_get("/dashboard/api/overview", admin_once_keys_are_required(get_overview))
