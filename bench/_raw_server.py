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
# The routes it answers on: promptbus's own and OpenAI's.
RAW_PATHS: Final = ("/v1/generate", "/v1/chat/completions")


def serve_raw(
    port: int, answer: bytes = RAW_ANSWER, content_type: str = "application/json"
) -> None:
    """Serve the baseline: read the body, hash it, answer the bytes stored under that hash.

    Every body is answered `answer` as `content_type`: the streams bench passes the very
    bytes a gateway answered (a replayed SSE stream, a chat completion) so that the
    ceiling writes as much as the gateway does.
    """
    answers: dict[bytes, bytes] = {}

    async def generate(request: web.Request) -> web.Response:
        key = hashlib.sha256(await request.read()).digest()
        stored = answers.get(key)
        if stored is None:
            stored = answers[key] = answer
        return web.Response(body=stored, content_type=content_type)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    for path in RAW_PATHS:
        app.router.add_post(path, generate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)
