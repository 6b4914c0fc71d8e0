"""Importing what a setting names as "package.module:attribute" (custom providers, chains)."""

import importlib
from collections.abc import Callable
from typing import Any


def load_callable(what: str, spec: str) -> Callable[..., Any]:
    """Import the callable `spec` names; ValueError starting with `what`, saying why not."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: {spec!r} is not of the form 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ValueError(f"{what}: {module_name!r} has no {attr!r}") from exc
    if not callable(target):
        raise ValueError(f"{what}: {spec!r} is not callable")
    loaded: Callable[..., Any] = target
    return loaded
