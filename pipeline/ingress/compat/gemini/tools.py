"""Gemini's function calling both ways: declarations and toolConfig in, calls out.

`tools[].functionDeclarations` become the request's tools (`parameters`, Gemini's OpenAPI
subset, converted to JSON Schema; `parametersJsonSchema` as it is). functionCallingConfig
modes map to promptbus's tool_choice: AUTO "auto", NONE "none", ANY "required", and ANY
with one allowed name that tool's name. Gemini has no switch for parallel calls.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pipeline.errors import ValidationFailed
from pipeline.ingress.compat.gemini.openapi import from_openapi
from pipeline.ingress.compat.gemini.wire import FunctionDeclaration, ToolConfig, ToolWire

_MODES: Final = {"AUTO": "auto", "NONE": "none", "ANY": "required", "MODE_UNSPECIFIED": None}


def _tool(declaration: FunctionDeclaration, where: str) -> dict[str, Any]:
    if declaration.parameters is not None and declaration.parameters_json_schema is not None:
        raise ValidationFailed(
            f"{where}: give parameters or parametersJsonSchema, not both", field=where
        )
    parameters = declaration.parameters_json_schema
    if declaration.parameters is not None:
        parameters = from_openapi(declaration.parameters)
    tool: dict[str, Any] = {"name": declaration.name, "description": declaration.description}
    if parameters is not None:
        tool["parameters"] = parameters
    return {k: v for k, v in tool.items() if v is not None}


def _declarations(tools: Sequence[ToolWire]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        for name in tool.model_extra or ():
            raise ValidationFailed(
                f"tools[{i}] is {name}: promptbus offers the model functionDeclarations only",
                field=f"tools[{i}].{name}",
            )
        for j, declaration in enumerate(tool.function_declarations or ()):
            out.append(_tool(declaration, f"tools[{i}].functionDeclarations[{j}]"))
    return out


def _choice(config: ToolConfig | None) -> str | None:
    calling = config.function_calling_config if config is not None else None
    if calling is None:
        return None
    where = "toolConfig.functionCallingConfig"
    mode = (calling.mode or "MODE_UNSPECIFIED").upper()
    if mode not in _MODES:
        raise ValidationFailed(f"promptbus does not support mode {mode!r}", field=f"{where}.mode")
    names = calling.allowed_function_names or []
    if names and mode != "ANY":
        raise ValidationFailed(
            "allowedFunctionNames goes with mode ANY", field=f"{where}.allowedFunctionNames"
        )
    if len(names) > 1:
        raise ValidationFailed(
            "promptbus can require one named function, not a choice of several",
            field=f"{where}.allowedFunctionNames",
        )
    return names[0] if names else _MODES[mode]


def offer(tools: Sequence[ToolWire] | None, config: ToolConfig | None) -> dict[str, Any]:
    """The internal request's tool fields (none when no function is declared)."""
    declared = _declarations(tools or ())
    if not declared:
        # toolConfig means nothing without functions to call.
        return {}
    choice = _choice(config)
    return {"tools": declared, **({"tool_choice": choice} if choice is not None else {})}


def function_call_parts(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An answer's tool calls as Gemini's functionCall parts (with promptbus's call ids)."""
    return [
        {"functionCall": {"id": call["id"], "name": call["name"], "args": call["arguments"]}}
        for call in calls
    ]
