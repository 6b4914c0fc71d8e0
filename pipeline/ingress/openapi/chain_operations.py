"""The chain and session routes, as the OpenAPI document shows them."""

from typing import Final

from pipeline.ingress.openapi.document import Operation, Reply
from schemas.chains import ChainInvocation, ChainList, ChainResult
from schemas.sessions import SessionView

CHAIN_OPERATIONS: Final = (
    Operation(
        "GET",
        "/v1/chains",
        "Every version of every chain (config/chains/)",
        replies=(Reply(200, "The chains", ChainList),),
    ),
    Operation(
        "GET",
        "/v1/chains/{chain_id}",
        "One chain's versions",
        replies=(Reply(200, "The chain's versions", ChainList),),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/chains/{chain_id}/invoke",
        "Run a chain: each model call on promptbus's path (cache, coalescing, routing, ledger)",
        body=ChainInvocation,
        replies=(Reply(200, "The chain's output, step values and calls", ChainResult),),
        errors=(400, 401, 403, 404, 413, 415, 422, 429, 502, 503, 504),
    ),
    Operation(
        "GET",
        "/v1/sessions/{session_id}",
        "A kept conversation: its messages, oldest first, and when it expires",
        replies=(Reply(200, "The session", SessionView),),
        errors=(404, 503),
    ),
    Operation(
        "DELETE",
        "/v1/sessions/{session_id}",
        "Forget a kept conversation",
        replies=(Reply(204, "Forgotten"),),
        errors=(404, 503),
    ),
)
