"""Every span and attribute name promptbus records, in one place.

The GenAI names follow the OpenTelemetry GenAI semantic conventions (Development status,
now in open-telemetry/semantic-conventions-genai): `gen_ai.provider.name` rather than the
deprecated `gen_ai.system`, `gen_ai.usage.input_tokens` / `output_tokens` rather than the
old prompt/completion token names. Those conventions still move; when they do, this module
is the one to change.
"""

from typing import Final

SERVICE_NAME: Final = "promptbus"
# Resource attribute: which part of a deployment this process is (ingress, worker, embedded).
PROCESS_ROLE: Final = "promptbus.process.role"

# Span names. A stage span is named f"{STAGE_SPAN} {stage}".
STAGE_SPAN: Final = "stage"
LOOKUP: Final = "lookup"
GENERATE: Final = "generate"
POSTPROCESS: Final = "postprocess"
EMIT: Final = "emit"
WEBHOOK_SPAN: Final = "webhook delivery"

# promptbus's own attributes.
STAGE: Final = "promptbus.stage"
REQUEST_ID: Final = "promptbus.request.id"
JOB_ID: Final = "promptbus.job.id"
TENANT: Final = "promptbus.tenant"
CACHE_HIT: Final = "promptbus.cache.hit"
DEPLOYMENT: Final = "promptbus.deployment"
STREAMED: Final = "promptbus.stream"
DEFERRED: Final = "promptbus.deferred"
DISPATCH_FATE: Final = "promptbus.dispatch.fate"
WEBHOOK_ATTEMPT: Final = "promptbus.webhook.attempt"
WEBHOOK_OUTCOME: Final = "promptbus.webhook.outcome"
WEBHOOK_ENDPOINT: Final = "promptbus.webhook.endpoint_id"

# General conventions.
ERROR_TYPE: Final = "error.type"
HTTP_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_STATUS: Final = "http.response.status_code"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_DESTINATION: Final = "messaging.destination.name"
MESSAGING_CONVERSATION_ID: Final = "messaging.message.conversation_id"

# GenAI conventions.
GEN_AI_OPERATION: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_TOP_P: Final = "gen_ai.request.top_p"

# Operation names, by promptbus provider: Gemini's API is generateContent, the
# OpenAI-compatible ones (and custom LangChain providers) are chat.
CHAT: Final = "chat"
GENERATE_CONTENT: Final = "generate_content"
OPERATIONS: Final = {"gemini": GENERATE_CONTENT, "openai": CHAT}
# Provider names, by promptbus provider; any other provider is named as configured.
PROVIDERS: Final = {"gemini": "gcp.gemini", "openai": "openai"}
