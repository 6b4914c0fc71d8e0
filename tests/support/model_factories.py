"""Model factories that tests name in `custom_providers`, as a deployment would its own."""

from langchain_core.language_models import BaseChatModel
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from pipeline.emulator import EMULATOR_API_KEY

# The emulator a test runs; the test sets it (monkeypatch) before promptbus imports these.
EMULATOR_URL = "http://127.0.0.1:9"
BUILT: list[str] = []


def emulator_openai(model: str) -> BaseChatModel:
    """A real ChatOpenAI on the emulator's OpenAI-compatible API, retries off."""
    BUILT.append(model)
    return ChatOpenAI(
        model=model,
        api_key=EMULATOR_API_KEY,
        base_url=f"{EMULATOR_URL}/v1",
        max_retries=0,
        timeout=10,
        use_responses_api=False,
    )


def emulator_gemini(model: str) -> BaseChatModel:
    """A real ChatGoogleGenerativeAI on the emulator's Gemini API, retries off."""
    BUILT.append(model)
    return ChatGoogleGenerativeAI(
        model=model,
        google_api_key=EMULATOR_API_KEY,
        base_url=EMULATOR_URL,
        api_version="v1beta",
        max_retries=1,
        timeout=10,
    )


def not_a_model(model: str) -> object:
    """A factory with a bug: it returns a string."""
    return f"model {model}"


def failing(model: str) -> BaseChatModel:
    """A factory that cannot build its model."""
    raise RuntimeError(f"no weights for {model}")


NOT_CALLABLE = 42
