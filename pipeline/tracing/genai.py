"""The span of one upstream model call, in the GenAI semantic conventions' terms."""

from contextlib import AbstractContextManager

from opentelemetry.trace import Span, SpanKind, Tracer

from pipeline.catalog import Deployment
from pipeline.tracing import names
from pipeline.tracing.spans import span
from schemas import GenerationParams
from schemas.stages import Generation


def provider_span(
    tracer: Tracer | None, deployment: Deployment, params: GenerationParams, *, streamed: bool
) -> AbstractContextManager[Span]:
    """A client span around one attempt on `deployment` (named `{operation} {model}`)."""
    if tracer is None:
        return span(None, "")
    spec = deployment.spec
    operation = names.OPERATIONS.get(spec.provider, names.CHAT)
    attributes: dict[str, str | int | float | bool] = {
        names.GEN_AI_OPERATION: operation,
        names.GEN_AI_PROVIDER: names.PROVIDERS.get(spec.provider, spec.provider),
        names.GEN_AI_REQUEST_MODEL: spec.provider_model,
        names.DEPLOYMENT: deployment.name,
        names.STREAMED: streamed,
    }
    if params.max_output_tokens is not None:
        attributes[names.GEN_AI_MAX_TOKENS] = params.max_output_tokens
    if params.temperature is not None:
        attributes[names.GEN_AI_TEMPERATURE] = params.temperature
    if params.top_p is not None:
        attributes[names.GEN_AI_TOP_P] = params.top_p
    return span(
        tracer, f"{operation} {spec.provider_model}", kind=SpanKind.CLIENT, attributes=attributes
    )


def answered(current: Span, generation: Generation) -> None:
    """Record what the call answered: the model, its token usage and why it stopped."""
    if not current.is_recording():
        return
    current.set_attributes(
        {
            # The provider model promptbus called and that answered: the providers do not
            # hand back a model name of their own through LangChain consistently.
            names.GEN_AI_RESPONSE_MODEL: generation.provider_model,
            names.GEN_AI_INPUT_TOKENS: generation.usage.input_tokens,
            names.GEN_AI_OUTPUT_TOKENS: generation.usage.output_tokens,
            names.GEN_AI_FINISH_REASONS: (generation.finish_reason,),
        }
    )
