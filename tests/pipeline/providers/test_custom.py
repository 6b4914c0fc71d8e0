"""Custom providers: a factory named in the settings, its models called over real HTTP."""

import shutil
from pathlib import Path

import orjson
import pytest

from pipeline.providers.custom import CustomProvider, build_custom_providers, load_factory
from pipeline.providers.dialects import GENERIC
from pipeline.services import Services
from pipeline.settings import CONFIG_DIR
from schemas import GenerationParams
from tests.support import model_factories
from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory
from tests.support.providers import PARAMS, PERSON, ask
from tests.support.settings import settings_for_test

FACTORIES = "tests.support.model_factories"


@pytest.fixture(autouse=True)
def factories_on_emulator(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_factories, "EMULATOR_URL", emulator.base_url)
    monkeypatch.setattr(model_factories, "BUILT", [])


def config_with_models(tmp_path: Path, provider: str, *models: str) -> Path:
    """A copy of config/ whose models.toml also lists `models` served by `provider`."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    with (config / "models.toml").open("a") as fh:
        for model in models:
            fh.write(
                f'\n[models.{model}]\nprovider = "{provider}"\nprovider_model = "{model}"\n'
                "input_per_million = 1.0\noutput_per_million = 2.0\n"
            )
    return config


async def test_a_factory_model_answers_over_http():
    # Given a provider whose factory builds ChatGoogleGenerativeAI models on the emulator
    provider = CustomProvider(
        "mine", model_factories.emulator_gemini, spec=f"{FACTORIES}:emulator_gemini", timeout_s=10
    )
    try:
        # When it is asked, with a parameter the Gemini dialect passes on
        generation = await provider.generate(
            "gemini-2.5-flash", ask("custom hello"), GenerationParams(max_output_tokens=2)
        )
    finally:
        await provider.aclose()

    # Then the emulator answered, under the custom provider's name
    assert generation.provider == "mine"
    assert generation.text == "[gemini-2.5-flash] custom"
    assert generation.finish_reason == "max_tokens"
    assert generation.usage.input_tokens == 2


@pytest.mark.parametrize(
    ("factory", "model"),
    [("emulator_openai", "gpt-4o-mini"), ("emulator_gemini", "gemini-2.5-flash")],
)
async def test_json_mode_follows_the_family_of_the_factory_model(factory: str, model: str):
    # Given custom providers whose factories build an OpenAI and a Gemini model
    provider = CustomProvider(
        "mine", getattr(model_factories, factory), spec=f"{FACTORIES}:{factory}", timeout_s=10
    )
    try:
        # When asked for JSON
        generation = await provider.generate(model, ask("someone"), PARAMS, response_schema=PERSON)
    finally:
        await provider.aclose()

    # Then the family's own JSON mode carried the schema (the emulator answers to it)
    answer = orjson.loads(generation.text)
    assert set(answer) >= {"name", "age"}


def test_an_unknown_model_family_is_asked_for_json_in_words():
    mode = GENERIC.json_mode(PERSON)

    assert mode.kwargs == {}
    assert mode.instruction is not None
    assert orjson.dumps(PERSON).decode() in mode.instruction
    assert GENERIC.call_kwargs(GenerationParams(stop=("END",), temperature=1)) == {"stop": ["END"]}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_colon_here", "is not of the form 'package.module:factory'"),
        ("tests.no_such_module:make", "cannot import 'tests.no_such_module'"),
        (f"{FACTORIES}:no_such_factory", "has no 'no_such_factory'"),
        (f"{FACTORIES}:NOT_CALLABLE", "is not callable"),
    ],
)
def test_a_bad_factory_path_says_why(spec: str, says: str):
    with pytest.raises(ValueError, match="custom provider 'mine'") as caught:
        load_factory("mine", spec)

    assert says in str(caught.value)


def test_models_the_catalogue_lists_are_built_at_start_up():
    providers = build_custom_providers(
        {"mine": f"{FACTORIES}:emulator_openai"}, {"mine": ["m-1", "m-2"]}, timeout_s=5
    )

    assert list(providers) == ["mine"]
    assert model_factories.BUILT == ["m-1", "m-2"]


def test_a_custom_provider_cannot_take_a_built_in_name():
    with pytest.raises(ValueError, match="would replace the built-in one"):
        build_custom_providers(
            {"openai": f"{FACTORIES}:emulator_openai"}, {}, timeout_s=5, reserved=("openai",)
        )


async def test_start_up_fails_on_a_factory_that_cannot_be_imported(emulator: Emulator):
    settings = settings_for_test(
        gemini_base_url=emulator.base_url, custom_providers={"mine": "tests.nowhere:make"}
    )

    with pytest.raises(ValueError, match=r"custom provider 'mine': cannot import 'tests.nowhere'"):
        await Services.start(settings)


@pytest.mark.parametrize(
    ("factory", "says"),
    [
        ("not_a_model", "returned str, not a langchain_core BaseChatModel"),
        ("failing", "failed: RuntimeError: no weights for mine-chat"),
    ],
)
async def test_start_up_fails_on_a_factory_that_builds_no_chat_model(
    emulator: Emulator, tmp_path: Path, factory: str, says: str
):
    # Given models.toml listing a model of the custom provider, and a broken factory
    settings = settings_for_test(
        gemini_base_url=emulator.base_url,
        config_dir=config_with_models(tmp_path, "mine", "mine-chat"),
        custom_providers={"mine": f"{FACTORIES}:{factory}"},
    )

    # When promptbus starts, then it refuses, naming the provider and the factory
    with pytest.raises(ValueError, match=r"custom provider 'mine'") as caught:
        await Services.start(settings)
    assert says in str(caught.value)
    assert f"{FACTORIES}:{factory}" in str(caught.value)


async def test_the_gateway_serves_a_custom_provider_model(
    start_gateway: GatewayFactory, tmp_path: Path
):
    # Given a gateway whose custom provider "mine" builds ChatOpenAI models on the emulator
    gateway = await start_gateway(
        config_dir=config_with_models(tmp_path, "mine", "mine-chat"),
        custom_providers={"mine": f"{FACTORIES}:emulator_openai"},
    )

    # When a caller asks for the model the catalogue gives to "mine"
    reply = await gateway.generate({"model": "mine-chat", "prompt": "through my factory"})

    # Then the factory's model answered, over HTTP, from the emulator
    assert reply.status == 200, reply.body
    assert "through my factory" in reply.body["text"]
    assert reply.body["finish_reason"] == "stop"
    assert model_factories.BUILT == ["mine-chat"]
    assert "mine from tests.support.model_factories" in gateway.services.provider_description()
    assert set(gateway.services.providers) == {"gemini", "openai", "mine"}


async def test_no_custom_provider_means_no_factory_call():
    assert build_custom_providers({}, {"mine": ["x"]}, timeout_s=5) == {}
    assert model_factories.BUILT == []
