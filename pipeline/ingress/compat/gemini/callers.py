"""Whether a request on a path Gemini shares with OpenAI (`GET /v1/models`) is Gemini's."""

from aiohttp import web

API_KEY_HEADER = "x-goog-api-key"
CLIENT_HEADER = "x-goog-api-client"


def is_gemini_request(request: web.Request) -> bool:
    """Whether `request` came from a Google client: its key or client header, no Bearer.

    google-genai sends `x-goog-api-key` and `x-goog-api-client`; a hand-written call may
    put the key in `?key=` instead. OpenAI's clients send `Authorization: Bearer`.
    """
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return False
    return (
        API_KEY_HEADER in request.headers
        or CLIENT_HEADER in request.headers
        or "key" in request.query
    )
