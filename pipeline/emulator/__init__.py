"""LLM API emulator: Gemini's REST API and OpenAI's Chat Completions on one aiohttp server.

The real clients talk to it over HTTP: google-genai (and LangChain's
`ChatGoogleGenerativeAI`) with `base_url=<root>`, the openai SDK (and `ChatOpenAI`) with
`base_url=<root>/v1` and any non-empty API key.

Routes:
    POST /v1beta/models/{model}:generateContent       Gemini (also :streamGenerateContent,
    POST /v1/models/{model}:generateContent            and on /v1)
    GET  /v1beta/models                                Gemini's model list
    POST /v1/chat/completions                          OpenAI (Bearer key required, else 401)
    GET  /v1/models, /v1/models/{id}                   OpenAI's model list (Gemini's list for
                                                       a request with x-goog-api-key only)
    GET  /stats, POST /stats/reset                     counters: calls, by_model, by_api,
                                                       stream_calls, errors (every call
                                                       answered with an error or reset)
    GET|POST|DELETE /control/faults                    fault rules (below)
    GET  /healthz

Answers are deterministic, derived only from the request: `[model] <echo of the last
user text without directives> #<digest>`; tokens are whitespace-separated words; a
max-tokens limit cuts the words (finish MAX_TOKENS / "length"). JSON mode (Gemini's
responseMimeType "application/json" with responseJsonSchema or responseSchema; OpenAI's
response_format json_object or json_schema) answers a JSON document that validates
against the schema, or `{"answer": "<the text answer>"}` without a schema.

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

Directives combine, as separate brackets or comma-separated in one bracket,
e.g. `[[emulator:delay=100,status=429]]`. An unknown directive is a 400; so is
retry_after without status. A json directive makes the answer JSON even when the
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
