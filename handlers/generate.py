"""Generate: ask the provider for an answer and refuse unusable ones."""

from handlers.context import StageContext
from pipeline.errors import ContentBlocked, EmptyAnswer
from schemas import StageEnvelope

# Finish reasons (lower-cased) that mean the provider withheld the answer.
BLOCKED_REASONS = frozenset(
    {"safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety", "other"}
)


async def generate(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Attach the provider's answer; a blocked or empty answer is an error."""
    if envelope.provider is None or envelope.provider_model is None:
        raise ValueError("generate needs a resolved model: run dedupe first")
    provider = ctx.provider(envelope.provider)
    generation = await provider.generate(
        envelope.provider_model, envelope.request.conversation(), envelope.request.params
    )
    reason = generation.finish_reason
    if reason in BLOCKED_REASONS:
        raise ContentBlocked(
            f"the model withheld its answer (finish_reason {reason})", finish_reason=reason
        )
    if not generation.text.strip():
        raise EmptyAnswer(
            f"the model gave an empty answer (finish_reason {reason})", finish_reason=reason
        )
    return envelope.model_copy(update={"generation": generation})
