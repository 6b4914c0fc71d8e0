"""The one settings object: PROMPTBUS_* environment over config/default.toml."""

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
MAX_PROCESSES = 256


class Settings(BaseSettings):
    """Everything promptbus reads at start-up; built once and passed in."""

    model_config = SettingsConfigDict(
        env_prefix="PROMPTBUS_",
        extra="ignore",
        frozen=True,
        toml_file=CONFIG_DIR / "default.toml",
        populate_by_name=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # `promptbus serve` processes on the port (SO_REUSEPORT); "auto" = one per core.
    processes: int = Field(default=1, ge=1, le=MAX_PROCESSES)
    config_dir: Path = CONFIG_DIR

    broker_url: str = "memory://"
    redis_url: str | None = None
    # Every Redis key starts with this: one deployment (or test run) per prefix.
    redis_prefix: str = Field(default="promptbus:", pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    redis_timeout_s: float = Field(default=0.5, gt=0, le=10)
    redis_retry_after_s: float = Field(default=5.0, gt=0, le=300)
    lock_ttl_s: float = Field(default=30.0, gt=0, le=600)
    embedded_worker: bool = True
    bus_suffix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$", max_length=64)
    publish_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # A request event on the bus over this many bytes is dead-lettered unparsed (a failed
    # completion goes out when its first 4 KiB name its job id).
    bus_max_event_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024, le=64 * 1024**2)
    # AMQP heartbeat (and Redis broker health-check) interval: a silent connection is dropped
    # within two of them. 0 = off.
    broker_heartbeat_s: int = Field(default=10, ge=0, le=3600)
    memory_polling_interval_s: float = Field(default=0.05, gt=0, le=1)
    redis_visibility_timeout_s: int = Field(default=3600, ge=1)
    worker_concurrency: int = Field(default=16, ge=1, le=512)
    worker_pool: Literal["threads", "prefork"] = "threads"

    job_retention_s: int = Field(default=24 * 3600, ge=60)
    # An unfinished job unchanged for this long is re-driven by a worker's sweeper.
    job_stall_s: float = Field(default=300.0, gt=0, le=24 * 3600)
    max_jobs: int = Field(default=100_000, ge=10)
    # A streaming job's delta feed keeps its newest this many entries; the memory feed keeps
    # the feeds of at most this many jobs (the least recently written go first).
    job_stream_max_deltas: int = Field(default=10_000, ge=16, le=1_000_000)
    job_stream_max_jobs: int = Field(default=1_000, ge=1, le=1_000_000)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)

    google_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GOOGLE_API_KEY", "PROMPTBUS_GOOGLE_API_KEY"),
    )
    gemini_base_url: str | None = None
    emulator_latency_ms: float = Field(default=0.0, ge=0)
    # How long a batch stays pending, then running, on the built-in emulator.
    emulator_batch_step_ms: float = Field(default=500.0, ge=0, le=600_000)
    provider_timeout_s: float = Field(default=30.0, gt=0)
    provider_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    provider_max_attempts: int = Field(default=1, ge=1, le=10)
    # Gemini Batch bridge: poll a job every initial..max seconds (x1.5 each time), and
    # cancel it (its unanswered items expire) once the deadline has passed.
    gemini_batch_poll_initial_s: float = Field(default=2.0, gt=0, le=3600)
    gemini_batch_poll_max_s: float = Field(default=60.0, gt=0, le=3600)
    gemini_batch_deadline_s: float = Field(default=24 * 3600.0, gt=0, le=7 * 24 * 3600)
    # A provider batch's requests go inline up to this many bytes (Gemini takes about 20 MB
    # inline), in an uploaded JSON Lines file past it.
    gemini_batch_inline_max_bytes: int = Field(default=16 * 1024 * 1024, ge=0, le=20 * 1024**2)
    # An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama...); unset: the built-in emulator's.
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "PROMPTBUS_OPENAI_API_KEY"),
    )
    # Extra providers: name -> "package.module:factory", a factory of LangChain chat models.
    custom_providers: dict[str, str] = Field(default_factory=dict, max_length=32)
    # Conversation memory: a session lives `session_ttl_s` after its last turn, keeps its
    # newest `session_max_messages`, and sends at most `session_max_turns` turns within
    # `session_max_tokens` (approximate) before each new one. In memory (no Redis), at most
    # `session_max_sessions` are kept. A turn waits `session_lock_wait_s` at most for the one
    # before it; a process that dies mid-turn frees its session after `session_turn_timeout_s`.
    session_ttl_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    session_max_messages: int = Field(default=200, ge=2, le=10_000)
    session_max_turns: int = Field(default=20, ge=0, le=1000)
    session_max_tokens: int = Field(default=8000, ge=1, le=1_000_000)
    session_max_sessions: int = Field(default=10_000, ge=1, le=10_000_000)
    session_lock_wait_s: float = Field(default=30.0, gt=0, le=600)
    session_turn_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    # "window": turns older than `session_max_turns` are no longer sent; "summary": they are
    # folded, as they leave, into a running summary (made by `session_summary_model`) that is.
    session_memory: Literal["window", "summary"] = "window"
    session_summary_model: str = Field(default="flash", min_length=1, max_length=128)
    # Chains written in Python: id -> "package.module:factory" of a LangChain Runnable.
    custom_chains: dict[str, str] = Field(default_factory=dict, max_length=32)

    # One retry budget across every layer: upstream calls per request, all deployments.
    retry_max_attempts: int = Field(default=4, ge=1, le=20)
    retry_base_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_backoff_s: float = Field(default=20.0, gt=0, le=600)
    sync_deadline_s: float = Field(default=30.0, gt=0, le=600)
    job_deadline_s: float = Field(default=600.0, gt=0, le=24 * 3600)
    # A deployment failing this many times within the window is skipped for the cooldown.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_window_s: float = Field(default=30.0, gt=0, le=3600)
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    # Rate limits (rpm/tpm per model in models.toml) count over this window; sync callers
    # wait at most rate_limit_wait_s for room before a 429.
    rate_limit_window_s: float = Field(default=60.0, gt=0, le=3600)
    rate_limit_wait_s: float = Field(default=2.0, ge=0, le=60)

    cache_max_entries: int = Field(default=10_000, ge=1)
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    cache_default_ttl_s: int = Field(default=3600, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # HTTP connections (pipeline/ingress/connections.py): a request line, and each header
    # line, at most `http_max_line_bytes`, at most `http_max_headers` headers (431 past either,
    # the connection closed); a request's headers and body must arrive within
    # `http_read_timeout_s` of its first byte (the connection is closed otherwise); an idle
    # keep-alive connection is closed after `http_keepalive_s`. A connection whose client
    # stops reading (its send buffer full) for `http_write_timeout_s` is aborted.
    http_max_line_bytes: int = Field(default=8190, ge=1024, le=65_536)
    http_max_headers: int = Field(default=100, ge=16, le=1000)
    http_read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    http_keepalive_s: float = Field(default=75.0, gt=0, le=3600)
    http_write_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Job and batch event streams (SSE) one tenant may hold open at once in each process.
    sse_max_streams_per_tenant: int = Field(default=32, ge=1, le=100_000)
    # Allocations between young garbage collections (CPython's default is 700): see heap.py.
    gc_gen0_threshold: int = Field(default=20_000, ge=100, le=1_000_000)
    coalesce_wait_s: float = Field(default=60.0, gt=0)

    data_dir: Path = Path(".promptbus")
    # postgresql://... (asyncpg) or sqlite:///path; unset: SQLite at data_dir/promptbus.db.
    database_url: SecretStr | None = None
    # The usage ledger: records wait in memory (at most `ledger_spool_max`, the oldest dropped
    # beyond) and are written `ledger_batch_size` rows to a statement, at least every
    # `ledger_flush_interval_s`; while the database is down, retried with backoff up to
    # `ledger_retry_max_s` (a write that hangs gives up after `ledger_write_timeout_s`);
    # on stop, what is pending gets `ledger_stop_timeout_s` to be written. A batch becomes rows
    # on the event loop (~4 us a row): 100 keeps that pause under half a millisecond, and
    # SQLite writes as many rows a second as with 500.
    ledger_enabled: bool = True
    ledger_batch_size: int = Field(default=100, ge=1, le=10_000)
    ledger_flush_interval_s: float = Field(default=0.5, gt=0, le=60)
    ledger_spool_max: int = Field(default=100_000, ge=1, le=10_000_000)
    ledger_retry_max_s: float = Field(default=10.0, gt=0, le=300)
    ledger_stop_timeout_s: float = Field(default=5.0, ge=0, le=120)
    ledger_write_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # GET /v1/usage: at most this many series rows (the response says when it cut), and
    # this long for the database to answer.
    usage_max_series: int = Field(default=1000, ge=1, le=100_000)
    usage_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Budget rows are re-read this often: a budget set or changed applies within it.
    budget_rules_ttl_s: float = Field(default=5.0, gt=0, le=3600)
    # Batches (/v1/files, /v1/batches): an input file is at most `batch_file_max_bytes` and
    # `batch_max_lines` requests (OpenAI's are 200 MB and 50,000; the bytes are kept in the
    # database, so the default is lower); an inline batch at most `batch_inline_max` requests.
    # Files and batches are deleted `batch_retention_s` after they were made. A batch's items
    # run `batch_chunk_size` to a Celery task, `batch_item_concurrency` at once in a task, at
    # most `batch_slots` tasks of one batch and `batch_tenant_slots` of one tenant at once
    # (every worker together). A chunk ends when its slowest item does and its lane goes
    # back to the broker, which costs a chunk of 8 at once about one upstream latency: a
    # chunk size that is a multiple of the item concurrency keeps the last round full (50 of
    # 8 left 6 slots idle for a round), and 16 rounds a chunk keep that cost near 5%.
    # `batch_window_s` is what completion_window "24h" stands for.
    batch_file_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    batch_max_lines: int = Field(default=50_000, ge=1, le=50_000)
    batch_inline_max: int = Field(default=1_000, ge=1, le=50_000)
    batch_retention_s: int = Field(default=30 * 24 * 3600, ge=60)
    batch_chunk_size: int = Field(default=128, ge=1, le=1000)
    batch_item_concurrency: int = Field(default=8, ge=1, le=256)
    batch_slots: int = Field(default=2, ge=1, le=256)
    batch_tenant_slots: int = Field(default=4, ge=1, le=1024)
    # Worker threads (or children) of each worker that batch lanes may hold at once: the rest
    # stay free for jobs and webhooks, however many batches are queued.
    batch_worker_slots: int = Field(default=4, ge=1, le=512)
    batch_window_s: float = Field(default=24 * 3600.0, gt=0, le=7 * 24 * 3600)
    # Batch progress events (bus, SSE, webhooks) go out at most this often per batch.
    batch_progress_interval_s: float = Field(default=1.0, gt=0, le=3600)
    # Each worker sweeps batches this often: expiry, stuck ends, retention.
    batch_sweep_interval_s: float = Field(default=10.0, gt=0, le=3600)
    webhook_secret: SecretStr | None = None
    webhook_allow_private: str | None = None
    webhook_retry_schedule: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000], max_length=50
    )
    webhook_timeout: float = Field(default=15.0, gt=0, le=300)
    webhook_max_concurrency: int = Field(default=64, ge=1, le=4096)
    webhook_per_endpoint_concurrency: int = Field(default=4, ge=1, le=256)
    webhook_disable_after_s: float = Field(default=5 * 24 * 3600, gt=0)

    # API keys: auto = required once any key exists, or whenever bound beyond loopback;
    # on = always required; off = never (every request is tenant `default`).
    auth: Literal["auto", "on", "off"] = "auto"
    # The key of the admin API (/v1/admin/); unset: the admin API refuses every caller.
    admin_key: SecretStr | None = None
    # A key looked up is trusted this long in each process: the bound within which a
    # revoked key (or a disabled tenant) stops working everywhere.
    key_cache_ttl_s: float = Field(default=5.0, gt=0, le=300)
    key_cache_max_entries: int = Field(default=10_000, ge=16, le=1_000_000)
    # A key's last_used_at is written at most this often (off the request path).
    key_touch_interval_s: float = Field(default=60.0, gt=0, le=3600)
    # Bad keys from one client address (the TCP peer's; X-Forwarded-For is not read): after
    # this many within the window, every request from it is a 429 for the cool-down (0: off).
    auth_failures_max: int = Field(default=20, ge=0, le=1_000_000)
    auth_failure_window_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    auth_cooldown_s: float = Field(default=60.0, gt=0, le=24 * 3600)
    # Addresses remembered at once (the least recently failing forgotten first), per process.
    auth_failure_max_addresses: int = Field(default=10_000, ge=16, le=1_000_000)

    # Prometheus metrics at /metrics (off: every hook is a no-op, and /metrics is a 404).
    metrics: bool = True
    # Tenants named in the tokens and cost series, per process; the rest count as "other".
    metrics_max_tenants: int = Field(default=100, ge=1, le=10_000)
    # `promptbus worker` serves its /metrics on this port (also --metrics-port); unset: none.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # prometheus_client's multiprocess directory, set by the entry point of a run whose
    # processes export together (pipeline/metrics_files.py); prometheus_client reads it too.
    metrics_multiprocess_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR")
    )

    # Traces (OpenTelemetry, exported over OTLP/HTTP): true or false; unset, they are on when
    # an OTLP endpoint is configured. The exporter reads the standard OTEL_* variables itself.
    tracing: bool | None = None
    otlp_endpoint: str | None = Field(
        default=None,
        max_length=2048,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ),
    )

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win, then the environment, then config/default.toml."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("processes", mode="before")
    @classmethod
    def _resolve_processes(cls, value: object) -> object:
        """`auto` is the machine's core count; anything else must be a whole number."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return min(os.cpu_count() or 1, MAX_PROCESSES)
            if not text.isdigit():
                raise ValueError(f"must be a whole number from 1 to {MAX_PROCESSES}, or auto")
            return int(text)
        return value

    @property
    def shares_state(self) -> bool:
        """Whether every serving process sees one cache, job store and set of limits."""
        return self.processes == 1 or self.redis_url is not None

    @property
    def tracing_on(self) -> bool:
        """Whether this process records and exports traces."""
        return self.tracing if self.tracing is not None else bool(self.otlp_endpoint)

    @property
    def models_file(self) -> Path:
        """The model catalogue: aliases, provider models and prices."""
        return self.config_dir / "models.toml"

    @property
    def templates_dir(self) -> Path:
        """The prompt templates, one TOML file per template id."""
        return self.config_dir / "templates"

    @property
    def chains_dir(self) -> Path:
        """The chains, one TOML file per chain id."""
        return self.config_dir / "chains"

    @property
    def gemini_uses_emulator(self) -> bool:
        """Whether Gemini calls go to the built-in emulator (no key, no base URL)."""
        return self.google_api_key is None and self.gemini_base_url is None

    @property
    def openai_uses_emulator(self) -> bool:
        """Whether OpenAI-compatible calls go to the built-in emulator (no key, no base URL)."""
        return self.openai_api_key is None and self.openai_base_url is None

    @property
    def uses_emulator(self) -> bool:
        """Whether promptbus must start its built-in emulator (for either provider)."""
        return self.gemini_uses_emulator or self.openai_uses_emulator
