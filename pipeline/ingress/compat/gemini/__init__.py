"""The Gemini-compatible API: google-genai and ChatGoogleGenerativeAI work with promptbus's
base URL, on `api_version` v1 or v1beta.

`POST /{v1,v1beta}/models/{model}:generateContent`, `:streamGenerateContent` (`?alt=sse`,
or one JSON array without it) and `:countTokens`; `GET /v1beta/models[/{model}]`. A model
is any provider model, alias or route of the catalogue; function calling works on any.
`GET /v1/models` is shared with the OpenAI API, whose route asks `is_gemini_request` and
hands Gemini's callers to `list_models` / `get_model` here.
"""

from pipeline.ingress.compat.gemini.callers import is_gemini_request
from pipeline.ingress.compat.gemini.routes import add_routes, get_model, list_models

__all__ = ["add_routes", "get_model", "is_gemini_request", "list_models"]
