"""Small valid envelopes for tests that need one but do not care about its contents."""

from schemas import CacheInfo, Cost, GenerateResponse, Usage


def answer(text: str = "the answer", *, key: str = "v1:t:k") -> GenerateResponse:
    """A generated answer: one prompt token in, two out, free."""
    return GenerateResponse(
        id="gen_1",
        model="flash",
        provider_model="gemini-2.5-flash",
        provider="gemini",
        text=text,
        finish_reason="stop",
        usage=Usage(input_tokens=1, output_tokens=2, total_tokens=3),
        cost=Cost(input_usd=0.0, output_usd=0.0, total_usd=0.0),
        cache=CacheInfo(hit=False, key=key),
        created=0.0,
    )
