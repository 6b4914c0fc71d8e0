"""Providers of your own: a factory of LangChain chat models, named in the settings.

`Settings.custom_providers` maps a provider name to `"package.module:factory"`. promptbus
imports the factory at start-up and calls it as `factory(model: str) -> BaseChatModel`
(`langchain_core.language_models.BaseChatModel`), once per provider model, reusing the
model it returns. The factory configures the model completely (endpoint, key, sampling
defaults); it should turn its SDK's own retries off, since promptbus retries.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from pipeline.plugins import load_callable
from pipeline.providers.langchain_base import LangChainProvider

ModelFactory = Callable[[str], BaseChatModel]


class _NotAChatModel(ValueError):
    """Raised when a factory returns something other than a LangChain chat model."""


class CustomProvider(LangChainProvider):
    """A provider whose models come from a factory named in the settings."""

    def __init__(self, name: str, factory: ModelFactory, *, spec: str, timeout_s: float) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.spec = spec
        self._factory = factory

    def build_model(self, provider_model: str) -> BaseChatModel:
        """The factory's model for `provider_model`; ValueError if it is not a chat model."""
        model: Any = self._factory(provider_model)
        if not isinstance(model, BaseChatModel):
            raise _NotAChatModel(
                f"custom provider {self.name!r}: {self.spec}({provider_model!r}) returned "
                f"{type(model).__qualname__}, not a langchain_core BaseChatModel"
            )
        return model


def load_factory(name: str, spec: str) -> ModelFactory:
    """Import the factory `spec` ("package.module:factory"); ValueError saying why not."""
    factory: ModelFactory = load_callable(f"custom provider {name!r}", spec)
    return factory


def build_custom_providers(
    specs: Mapping[str, str],
    models: Mapping[str, Iterable[str]],
    *,
    timeout_s: float,
    reserved: Iterable[str] = (),
) -> dict[str, CustomProvider]:
    """One provider per configured factory, each model of `models[name]` built and checked.

    Building the listed models at start-up is what makes a factory that returns the wrong
    type fail there, with a clear message, instead of on the first request.
    """
    taken = set(reserved)
    providers: dict[str, CustomProvider] = {}
    for name, spec in specs.items():
        if name in taken:
            raise ValueError(f"custom provider {name!r} would replace the built-in one")
        provider = CustomProvider(name, load_factory(name, spec), spec=spec, timeout_s=timeout_s)
        for provider_model in models.get(name, ()):
            try:
                provider.model(provider_model)
            except _NotAChatModel:
                raise
            except Exception as exc:
                raise ValueError(
                    f"custom provider {name!r}: {spec}({provider_model!r}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        providers[name] = provider
    return providers
