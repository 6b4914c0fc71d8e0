"""Arrival: what every request goes through as it enters, on every path, before its key."""

from typing import TypeVar

from handlers.structured import check_schema
from pipeline.templates import TemplateCatalog
from schemas import GenerateRequest

R = TypeVar("R", bound=GenerateRequest)


def arrive(request: R, templates: TemplateCatalog) -> R:
    """`request` ready to identify: its schemas checked, its template expanded.

    ValidationFailed (422) for a bad response schema, tool parameters or template variables,
    UnknownTemplate (404) for an unknown template. Sync requests, job submissions and bus
    events all pass here.
    """
    if request.response_schema is not None:
        check_schema(request.response_schema)
    for index, tool in enumerate(request.tools or ()):
        if tool.parameters is not None:
            check_schema(tool.parameters, f"tools.{index}.parameters")
    return templates.expand(request)
