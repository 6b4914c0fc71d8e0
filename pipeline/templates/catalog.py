"""The template catalogue: which templates a request may name, and expanding a request."""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from pipeline.errors import InvalidConfig, UnknownTemplate, ValidationFailed
from pipeline.templates.loader import LANGCHAIN_TYPES, TemplateVersion, load_directory
from schemas import GenerateRequest, Message

R = TypeVar("R", bound=GenerateRequest)

_ROLES = {langchain_type: role for role, langchain_type in LANGCHAIN_TYPES.items()}


class TemplateCatalog:
    """Every template version, loaded and built once at start-up; expands template requests."""

    def __init__(self, versions: Iterable[TemplateVersion] = ()) -> None:
        self._by_id: dict[str, dict[int, TemplateVersion]] = {}
        for version in versions:
            by_number = self._by_id.setdefault(version.id, {})
            if version.version in by_number:
                raise InvalidConfig(
                    f"template {version.id!r} version {version.version} is defined twice"
                )
            by_number[version.version] = version

    @classmethod
    def from_directory(cls, directory: Path) -> "TemplateCatalog":
        """Load config/templates/; InvalidConfig naming the file if one is bad."""
        return cls(load_directory(directory))

    def get(self, template_id: str, version: int | None = None) -> TemplateVersion:
        """One version of a template (the newest when `version` is None), or UnknownTemplate."""
        by_number = self._by_id.get(template_id)
        if by_number is None:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise UnknownTemplate(
                f"unknown template {template_id!r}; known templates: {known}", field="template.id"
            )
        if version is None:
            return by_number[max(by_number)]
        found = by_number.get(version)
        if found is None:
            known = ", ".join(str(n) for n in sorted(by_number))
            raise UnknownTemplate(
                f"template {template_id!r} has no version {version}; versions: {known}",
                field="template.version",
            )
        return found

    def versions(self, template_id: str | None = None) -> list[TemplateVersion]:
        """Every version (or one template's, UnknownTemplate if unknown), by id then version."""
        if template_id is not None:
            self.get(template_id)
            ids = [template_id]
        else:
            ids = sorted(self._by_id)
        return [self._by_id[i][n] for i in ids for n in sorted(self._by_id[i])]

    def expand(self, request: R) -> R:
        """`request` with its template rendered into `messages` and its version pinned.

        A request without a template, or one already expanded, comes back as it is.
        ValidationFailed (422) for a missing or unknown variable, UnknownTemplate (404)
        for an unknown id or version.
        """
        ref = request.template
        if ref is None or request.expanded:
            return request
        version = self.get(ref.id, ref.version)
        messages = render(version, ref.variables)
        data = request.model_dump(exclude_unset=True)
        data["messages"] = messages
        data["template"] = ref.model_copy(update={"version": version.version})
        try:
            return type(request).model_validate(data)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"]
            raise ValidationFailed(
                f"template {ref.id!r} version {version.version} renders an invalid request: "
                f"{problem}",
                field="template",
            ) from exc


def render(version: TemplateVersion, variables: Mapping[str, object]) -> tuple[Message, ...]:
    """The messages `version` renders to with `variables`, which must match its own exactly."""
    name = f"template {version.id!r} version {version.version}"
    missing = sorted(set(version.variables) - set(variables))
    if missing:
        raise ValidationFailed(
            f"{name} needs variable {missing[0]!r} (missing: {', '.join(missing)})",
            field=f"template.variables.{missing[0]}",
        )
    extra = sorted(set(variables) - set(version.variables))
    if extra:
        takes = ", ".join(version.variables) or "no variables"
        raise ValidationFailed(
            f"{name} has no variable {extra[0]!r} (unknown: {', '.join(extra)}; it takes {takes})",
            field=f"template.variables.{extra[0]}",
        )
    rendered = version.prompt.format_messages(**{k: _text(v) for k, v in variables.items()})
    messages = []
    for message in rendered:
        content = message.content if isinstance(message.content, str) else str(message.text)
        try:
            messages.append(Message(role=_ROLES[message.type], content=content))
        except ValidationError as exc:
            raise ValidationFailed(
                f"{name} renders an invalid {_ROLES[message.type].value} message: "
                f"{exc.errors(include_url=False)[0]['msg']}",
                field="template.variables",
            ) from exc
    return tuple(messages)


def _text(value: object) -> str:
    """A variable's value as the text it renders to (JSON's spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
