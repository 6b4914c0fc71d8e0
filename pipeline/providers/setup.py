"""Which providers one process runs, built from the settings, and how to describe them."""

from pydantic import SecretStr

from pipeline.catalog import ModelCatalog
from pipeline.emulator import EMULATOR_API_KEY
from pipeline.providers.base import ChatProvider
from pipeline.providers.batch_outcomes import PollPolicy
from pipeline.providers.custom import CustomProvider, build_custom_providers
from pipeline.providers.gemini import GEMINI_API_URL, GeminiProvider
from pipeline.providers.gemini_batch import GeminiBatchClient
from pipeline.providers.openai import OPENAI_API_URL, OpenAIProvider
from pipeline.settings import Settings

BUILT_IN = ("gemini", "openai")


def custom_providers(settings: Settings, catalog: ModelCatalog) -> dict[str, CustomProvider]:
    """The configured custom providers, each catalogue model of theirs built and checked.

    Raises ValueError naming the provider when a factory cannot be imported or builds
    something other than a LangChain chat model: call it before starting anything else.
    """
    models: dict[str, list[str]] = {}
    for spec in catalog.specs():
        models.setdefault(spec.provider, []).append(spec.provider_model)
    return build_custom_providers(
        settings.custom_providers,
        models,
        timeout_s=settings.provider_timeout_s,
        reserved=BUILT_IN,
    )


def on_emulator(settings: Settings, emulator_url: str | None) -> Settings:
    """`settings` with the emulated providers pointed at a running built-in emulator.

    The emulator serves Gemini's API at its root and the OpenAI-compatible API under /v1.
    """
    if emulator_url is None:
        if settings.uses_emulator:
            raise ValueError("the settings need the built-in emulator, but none is running")
        return settings
    update: dict[str, str] = {}
    if settings.gemini_uses_emulator:
        update["gemini_base_url"] = emulator_url
    if settings.openai_uses_emulator:
        update["openai_base_url"] = f"{emulator_url}/v1"
    return settings.model_copy(update=update)


def builtin_providers(settings: Settings, emulator_url: str | None) -> dict[str, ChatProvider]:
    """Gemini and the OpenAI-compatible provider, on the built-in emulator where unset."""
    settings = on_emulator(settings, emulator_url)
    gemini = GeminiProvider(
        api_key=_key(settings.google_api_key),
        base_url=settings.gemini_base_url or GEMINI_API_URL,
        timeout_s=settings.provider_timeout_s,
        max_attempts=settings.provider_max_attempts,
    )
    openai = OpenAIProvider(
        api_key=_key(settings.openai_api_key),
        base_url=settings.openai_base_url or OPENAI_API_URL,
        timeout_s=settings.provider_timeout_s,
        connect_timeout_s=settings.provider_connect_timeout_s,
    )
    return {gemini.name: gemini, openai.name: openai}


def gemini_batch_client(
    settings: Settings,
    catalog: ModelCatalog,
    emulator_url: str | None,
    poll: PollPolicy | None = None,
) -> GeminiBatchClient:
    """The Gemini Batch API client, where the Gemini provider's calls go (key and base URL),
    polling as the settings say unless given a policy."""
    settings = on_emulator(settings, emulator_url)
    if poll is None:
        poll = PollPolicy(
            initial_s=settings.gemini_batch_poll_initial_s,
            max_s=max(settings.gemini_batch_poll_initial_s, settings.gemini_batch_poll_max_s),
            deadline_s=settings.gemini_batch_deadline_s,
        )
    return GeminiBatchClient(
        api_key=_key(settings.google_api_key),
        base_url=settings.gemini_base_url or GEMINI_API_URL,
        catalog=catalog,
        poll=poll,
        timeout_s=settings.provider_timeout_s,
        inline_max_bytes=settings.gemini_batch_inline_max_bytes,
    )


def describe(settings: Settings, emulator_address: str | None) -> str:
    """Which providers answer and where, for the start-up log line."""
    emulated = [
        (name, key)
        for name, key, on_emulator in (
            ("gemini", "GOOGLE_API_KEY", settings.gemini_uses_emulator),
            ("openai", "OPENAI_API_KEY", settings.openai_uses_emulator),
        )
        if on_emulator
    ]
    parts = []
    if emulated:
        names = " and ".join(name for name, _ in emulated)
        keys = " and ".join(key for _, key in emulated)
        verb = "are" if len(emulated) > 1 else "is"
        where = f"the built-in emulator at {emulator_address}"
        parts.append(f"{names} via {where} ({keys} {verb} not set)")
    if not settings.gemini_uses_emulator:
        gemini_at = settings.gemini_base_url or "Google's API"
        parts.append(f"gemini at {gemini_at}")
    if not settings.openai_uses_emulator:
        parts.append(f"openai at {settings.openai_base_url or OPENAI_API_URL}")
    parts.extend(f"{name} from {spec}" for name, spec in settings.custom_providers.items())
    return "; ".join(parts)


def _key(key: SecretStr | None) -> SecretStr:
    # A base URL without a key is an emulator, a local server (vLLM, Ollama) or a proxy
    # that holds the key itself; the SDKs insist on some key all the same.
    return key if key is not None else SecretStr(EMULATOR_API_KEY)
