"""The fast-path bench's raw baseline: the practical ceiling for Python ingress."""

from __future__ import annotations

import hashlib
import json
from typing import Final

from _common import HOST
from aiohttp import web

RAW_ANSWER: Final = json.dumps(
    {"text": "a fixed answer from the raw baseline", "cache": {"hit": True}}
).encode()


def serve_raw(port: int) -> None:
    """Serve the baseline: read the body, hash it, answer the JSON stored under that hash."""
    answers: dict[bytes, bytes] = {}

    async def generate(request: web.Request) -> web.Response:
        key = hashlib.sha256(await request.read()).digest()
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = RAW_ANSWER
        return web.Response(body=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/generate", generate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)
