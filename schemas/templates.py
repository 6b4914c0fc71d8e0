"""The template list: what GET /v1/templates and GET /v1/templates/{id} return."""

from pydantic import Field

from schemas._base import Envelope


class TemplateInfo(Envelope):
    """One version of a prompt template, and the variables a request must give it."""

    id: str
    version: int = Field(ge=1)
    description: str
    variables: tuple[str, ...] = Field(description="Every variable the version takes, sorted")


class TemplateList(Envelope):
    """Template versions, sorted by id, then version."""

    data: tuple[TemplateInfo, ...]
