"""LLM API emulator: Gemini's REST API and OpenAI's Chat Completions on one aiohttp server.

The real clients talk to it over HTTP: google-genai (and LangChain's
`ChatGoogleGenerativeAI`) with `base_url=<root>`, the openai SDK (and `ChatOpenAI`) with
`base_url=<root>/v1` and any non-empty API key.

Routes ({v} is v1beta or v1):
    POST /{v}/models/{model}:generateContent           Gemini
    POST /{v}/models/{model}:streamGenerateContent     Gemini, server-sent events (?alt=sse)
    POST /{v}/models/{model}:countTokens               Gemini: {"totalTokens": N} for
                                                       `contents` or `generateContentRequest`
    GET  /v1beta/models, /v1beta/models/{model}        Gemini's model list and Model resource
    POST /{v}/models/{model}:batchGenerateContent      Gemini Batch API, inline requests: a
                                                       long-running Operation, the batch in
                                                       `metadata` (state, batchStats, output)
    GET  /{v}/batches/{id}, POST /{v}/batches/{id}:cancel, DELETE /{v}/batches/{id},
    GET  /{v}/batches?pageSize=&pageToken=             the batch's Operation; cancel; forget;
                                                       the batches, oldest first
    POST /upload/{v}/files                             Gemini Files, resumable upload (start,
                                                       then chunks to X-Goog-Upload-URL)
    GET  /{v}/files/{id}, GET /{v}/files/{id}:download?alt=media, DELETE /{v}/files/{id}
                                                       a file's resource; its bytes; forget
    POST /v1/chat/completions                          OpenAI (Bearer key required, else 401)
    GET  /v1/models, /v1/models/{id}                   OpenAI's model list and model (Gemini's
                                                       for a request with x-goog-api-key or
                                                       ?key= and no Authorization header)
    GET  /stats, POST /stats/reset                     counters: calls, by_model, by_api,
                                                       stream_calls, errors (every call
                                                       answered with an error or reset)
    GET|POST|DELETE /control/faults                    fault rules (below)
    GET  /healthz

Answers are deterministic, derived only from the request: `[model] <echo of the last
user text without directives> #<digest>`; tokens are whitespace-separated words; a
max-tokens limit cuts the words (finish MAX_TOKENS / "length"). A conversation that
ends with tool results (OpenAI `tool` messages; a Gemini turn of functionResponse parts)
is answered `[model] tool result: <content> #<digest>`, one `tool result:` per result,
and never with further tool calls. Gemini streams carry cumulative usageMetadata on
every chunk, the last one with finishReason and the non-stream totals. JSON mode (Gemini's
responseMimeType "application/json" with responseJsonSchema or responseSchema; OpenAI's
response_format json_object or json_schema) answers a JSON document that validates
against the schema, or `{"answer": "<the text answer>"}` without a schema.

A batch stays BATCH_STATE_PENDING for `EmulatorConfig.batch_step_ms`, RUNNING for as long
again, then answers every inline request as generateContent would (directives and fault
rules included; each counts as one call in /stats) and SUCCEEDED: `output.inlinedResponses`
holds, in input order and with the request's metadata, `{"response": ...}` or, for a
request that failed, `{"error": {"code", "message"}}`. A batch of an uploaded JSON Lines
file (`inputConfig.fileName`, `{"key", "request"}` lines) answers in a generated file
instead (`output.responsesFile`, `{"key", "response" | "error"}` lines). A cancelled
batch answers nothing. State moves when the batch is read (get, list), never in the
background.

Directives, written in a user message, make a call misbehave (the call still counts in
/stats). They are read from the last user message, except `json=`, read from any:

    [[emulator:status=503]]           that 4xx/5xx status, in the API's error format
    [[emulator:status=429,retry_after=2]]
                                      plus the delay: Gemini's body carries google.rpc.RetryInfo
                                      (retryDelay "2s"); both send Retry-After: 2 (whole seconds,
                                      rounded up), OpenAI also retry-after-ms: 2000
    [[emulator:block=safety]]         Gemini: finishReason SAFETY, no content; OpenAI:
                                      finish_reason content_filter, content null
    [[emulator:block=prompt]]         Gemini: promptFeedback.blockReason SAFETY, no candidates;
                                      OpenAI: 400 with code content_filter
    [[emulator:empty]]                an empty answer, finish STOP / stop
    [[emulator:delay=250]]            wait that many extra milliseconds first
    [[emulator:reset]]                reset the connection (TCP RST), no response at all
    [[emulator:json=invalid]]         valid JSON that breaks the schema (a required property
                                      missing, or a wrong type)
    [[emulator:json=malformed]]       text that is not JSON (the document cut short)
    [[emulator:json=invalid_then_valid]], [[emulator:json=malformed_then_valid]]
                                      bad as above while the conversation holds one user turn,
                                      valid once it holds two or more (a repair re-ask)
    [[emulator:tool_calls=2]]         (1..4) when the request offers tools and a user turn is
                                      last: that many calls to the offered functions in
                                      order (cycling), arguments valid for each function's
                                      parameters ({} without). OpenAI: content null,
                                      tool_calls, finish "tool_calls"; Gemini: functionCall
                                      parts, finish STOP. Without tools offered, a 400.
                                      OpenAI's tool_choice "none" answers text,
                                      parallel_tool_calls false makes at most one call;
                                      Gemini's functionCallingConfig mode NONE answers text.
                                      Without the directive, a request that requires a call
                                      (tool_choice "required" or a named function; mode ANY)
                                      gets one.

Stream controls, read from the last user message too (a non-stream call ignores them):

    [[emulator:chunks=8]]             (1..64) the text in that many chunks (fewer if it has
                                      fewer words; default 3); OpenAI sends each tool call's
                                      arguments in that many fragments
    [[emulator:chunk_delay=50]]       that many milliseconds between stream events
    [[emulator:cut=2]]                after 2 content chunks (text pieces; OpenAI tool call
                                      deltas; Gemini's one function call chunk) close the
                                      connection: no finish, no usage, no [DONE], the
                                      chunked body left incomplete
    [[emulator:stream_error=2]]       after 2 content chunks send the API's error event and
                                      end the stream cleanly (OpenAI: no [DONE]; Gemini:
                                      {"error": {"code": 500, ..., "status": "INTERNAL"}})

Directives combine, as separate brackets or comma-separated in one bracket,
e.g. `[[emulator:delay=100,status=429]]`. An unknown directive or a value out of
range is a 400; so is retry_after without status, and cut with stream_error. A cut or a
stream error counts in /stats errors. A json directive makes the answer JSON even when the
request did not ask for JSON mode.

Fault rules apply to calls whatever their prompt. `POST /control/faults` with
`{"rules": [...]}` replaces the rules (counters start at zero), `GET` lists them with
their `matched` and `fired` counters, `DELETE` clears them. A rule:

    {"model": "gemini-2.5-flash" | null,   match this model only (null: any)
     "api": "gemini" | "openai" | null,     match this API only (null: both)
     "fault": "status" | "reset" | "slow" | "safety" | "empty" | "malformed_json",
     "status": 503,                         for "status" only (400-599), required there
     "retry_after_s": 1.5 | null,           for "status" only: as retry_after= above
     "delay_ms": 200,                       for "slow" only, required there (> 0)
     "after": 0,                            let the first N matching calls through
     "times": null,                         fire at most N times (null: no limit)
     "probability": 1.0,                    fire with this probability (0..1)
     "seed": null}                          seed of the rule's own random.Random

Rules are tried in order on every valid call (a 400 or 401 is never faulted); a matching
rule counts the call in `matched`, and the first rule that fires decides the call (rules
after it do not see the call). A rule draws from its random sequence only for calls it
could fire on (past `after`, within `times`), so a seed gives the same sequence each time
the rules are set. A fired rule's fault takes the place of the prompt's directive of
the same kind; `slow` adds to any delay. Anything not JSON or not a valid rule list is a
400 naming each problem, and the rules in force stay as they were.
"""

from pipeline.emulator.app import RunningEmulator, create_emulator_app, start_emulator
from pipeline.emulator.calls import CONFIG_KEY, FAULTS_KEY, STATS_KEY
from pipeline.emulator.faults import FaultBook, FaultRule
from pipeline.emulator.state import EMULATOR_API_KEY, EmulatorConfig, EmulatorStats

__all__ = [
    "CONFIG_KEY",
    "EMULATOR_API_KEY",
    "FAULTS_KEY",
    "STATS_KEY",
    "EmulatorConfig",
    "EmulatorStats",
    "FaultBook",
    "FaultRule",
    "RunningEmulator",
    "create_emulator_app",
    "start_emulator",
]
