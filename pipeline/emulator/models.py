"""Both APIs' model catalogs: `GET /{version}/models` and `GET /{version}/models/{model}`.

`/v1/models` is both OpenAI's and Gemini's path; a request with a Gemini key
(`x-goog-api-key` or `?key=`) and no Authorization header gets Gemini's shape.
"""

from typing import Final

from aiohttp import web

from pipeline.emulator.gemini import json_response
from pipeline.emulator.openai import authorized, unauthorized
from pipeline.emulator.state import Json

OPENAI_MODELS: Final = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-4.1")
GEMINI_MODELS: Final = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
)
GEMINI_METHODS: Final = ("generateContent", "streamGenerateContent", "countTokens")
_CREATED: Final = 1_700_000_000
_INPUT_LIMIT: Final = 1_048_576
_OUTPUT_LIMIT: Final = 65_536


def gemini_client(request: web.Request) -> bool:
    """Whether the request comes from a Gemini client: it sends Google's key, no bearer."""
    has_key = "x-goog-api-key" in request.headers or "key" in request.query
    return has_key and "Authorization" not in request.headers


def gemini_model(name: str) -> Json:
    """Describe a model as Gemini's Model resource (any name is described)."""
    display = " ".join(word.capitalize() for word in name.split("-"))
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": display,
        "description": f"{display}, emulated.",
        "inputTokenLimit": _INPUT_LIMIT,
        "outputTokenLimit": _OUTPUT_LIMIT,
        "supportedGenerationMethods": list(GEMINI_METHODS),
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
    }


def openai_model(name: str) -> Json:
    """Describe a model as OpenAI's Model object (any name is described)."""
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "emulator"}


def _as_gemini(request: web.Request) -> bool:
    """Whether to answer in Gemini's shape: on v1beta always, on v1 for a Gemini client."""
    return request.match_info["version"] == "v1beta" or gemini_client(request)


async def list_models(request: web.Request) -> web.Response:
    """List the models, in the shape of the API that asks."""
    if _as_gemini(request):
        return json_response({"models": [gemini_model(name) for name in GEMINI_MODELS]})
    if not authorized(request):
        return unauthorized()
    names = [*OPENAI_MODELS, *GEMINI_MODELS]
    return json_response({"object": "list", "data": [openai_model(name) for name in names]})


async def get_model(request: web.Request) -> web.Response:
    """Describe one model, in the shape of the API that asks."""
    name = request.match_info["model"]
    if _as_gemini(request):
        return json_response(gemini_model(name.removeprefix("models/")))
    if not authorized(request):
        return unauthorized()
    return json_response(openai_model(name))
