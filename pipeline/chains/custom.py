"""Chains written in Python: `Settings.custom_chains` maps a chain id to "package.module:factory".

The factory takes no arguments and returns a LangChain Runnable, typically composed over
`PromptbusChatModel`, so that its model calls take promptbus's path like a config chain's.
It is invoked with the request's variables as its input; its output (a message: its text)
is the chain's output.
"""

import re
from typing import Any, Final

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel

from pipeline.chains.build import State
from pipeline.chains.spec import ChainVersion
from pipeline.errors import ValidationFailed
from pipeline.plugins import load_callable

_CHAIN_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
OUTPUT: Final = "output"


def load_custom(chain_id: str, spec: str) -> tuple[ChainVersion, Runnable[State, State]]:
    """The chain the factory `spec` makes; ValueError saying why not."""
    what = f"custom chain {chain_id!r}"
    if not _CHAIN_ID.match(chain_id):
        raise ValueError(f"{what}: not a chain id (lower-case letters, digits, '_', '.', '-')")
    factory = load_callable(what, spec)
    made = factory()
    if not isinstance(made, Runnable):
        raise ValueError(f"{what}: {spec}() returned {type(made).__qualname__}, not a Runnable")
    doc = (factory.__doc__ or "").strip()
    description = doc.splitlines()[0] if doc else f"A custom chain ({spec})"
    properties = made.get_input_jsonschema().get("properties") or {}
    version = ChainVersion(
        id=chain_id,
        version=1,
        description=description,
        inputs=tuple(sorted(properties)),
        output=OUTPUT,
        steps={},
        custom=True,
    )
    return version, made | RunnableLambda(lambda value: {OUTPUT: _plain(value)})


def _plain(value: Any) -> Any:
    """A Runnable's output as JSON can hold it: a message's text, a model's fields."""
    if isinstance(value, BaseMessage):
        return value.text
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


# What a Runnable raises for input it cannot take (a prompt's missing variable, say).
INPUT_ERRORS: Final = (KeyError, TypeError, ValueError)


def refusal(chain_id: str, exc: Exception) -> ValidationFailed:
    """A custom chain's refusal of its variables, as a 422."""
    return ValidationFailed(
        f"custom chain {chain_id!r} refused its variables: {exc}", field="variables"
    )
