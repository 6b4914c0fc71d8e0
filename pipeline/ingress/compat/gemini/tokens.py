"""`:countTokens`: the tokens of a conversation, as the model's own provider counts them.

A Gemini deployment counts with Gemini's countTokens (through the LangChain model's
client); a provider without a count of its own gives an estimate. A route counts on its
first deployment. Nothing is generated, cached or billed.
"""

from aiohttp import web

from pipeline.catalog import Route
from pipeline.errors import UpstreamUnavailable
from pipeline.ingress.compat.gemini.turns import conversation
from pipeline.ingress.compat.gemini.wire import CountTokensRequest
from pipeline.ingress.keys import SERVICES


async def count_tokens(
    request: web.Request, route: Route, body: CountTokensRequest
) -> web.Response:
    """`{"totalTokens": N}` for the contents (or the whole generateContentRequest) of `body`."""
    whole = body.generate_content_request
    if whole is not None:
        turns = conversation(whole.contents, whole.system_instruction)
    else:
        turns = conversation(body.contents or [])
    spec = route.deployments[0].spec
    provider = request.app[SERVICES].providers.get(spec.provider)
    if provider is None:
        raise UpstreamUnavailable(f"provider {spec.provider!r} is not configured")
    total = await provider.count_tokens(spec.provider_model, turns)
    return web.json_response({"totalTokens": total})
