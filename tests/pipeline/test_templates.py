"""Loading templates from TOML and expanding template requests, without a running gateway."""

from pathlib import Path

import pytest

from pipeline.cache.keys import cache_key
from pipeline.errors import InvalidConfig, UnknownTemplate, ValidationFailed
from pipeline.settings import Settings
from pipeline.templates import TemplateCatalog
from schemas import GenerateRequest, Role
from schemas.jobs import JobSubmission

GREET = """
[[versions]]
version = 1
description = "Greet someone."
messages = [
  { role = "system", content = "You are {mood}." },
  { role = "user", content = "Say hello to {name}." },
]

[[versions]]
version = 2
description = "Greet someone, with an example."
messages = [
  { role = "system", content = "You are {mood}. Literal {{braces}} stay." },
  { role = "user", content = "Say hello to Ada." },
  { role = "assistant", content = "Hello, Ada!" },
  { role = "user", content = "Say hello to {name}; excited: {excited}; times: {times}." },
]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> TemplateCatalog:
    write(tmp_path, "greet", GREET)
    return TemplateCatalog.from_directory(tmp_path)


def template_request(variables: dict[str, object], version: int | None = None) -> GenerateRequest:
    ref: dict[str, object] = {"id": "greet", "variables": variables}
    if version is not None:
        ref["version"] = version
    return GenerateRequest.model_validate({"model": "flash", "template": ref})


def one_version(messages: str, version: int = 1) -> str:
    return f'[[versions]]\nversion = {version}\ndescription = "d"\nmessages = [{messages}]\n'


USER = '{ role = "user", content = "hi {x}" }'

NOT_ALLOWED = "is not allowed; use a plain {name}"
# Each bad file, and what the loader must say about it.
BAD_FILES = {
    "attribute access": (
        one_version('{ role = "user", content = "hi {x.__class__}" }'),
        f"placeholder '{{x.__class__}}' {NOT_ALLOWED}",
    ),
    "index access": (
        one_version('{ role = "user", content = "hi {x[0]}" }'),
        f"placeholder '{{x[0]}}' {NOT_ALLOWED}",
    ),
    "conversion": (
        one_version('{ role = "user", content = "hi {x!r}" }'),
        f"placeholder '{{x!r}}' {NOT_ALLOWED}",
    ),
    "format spec": (
        one_version('{ role = "user", content = "hi {x:>999999999}" }'),
        f"placeholder '{{x:>999999999}}' {NOT_ALLOWED}",
    ),
    "positional field": (
        one_version('{ role = "user", content = "hi {}" }'),
        f"placeholder '{{}}' {NOT_ALLOWED}",
    ),
    "unbalanced brace": (
        one_version('{ role = "user", content = "hi {x" }'),
        "write a literal brace as",
    ),
    "missing user message": (
        one_version('{ role = "system", content = "be {x}" }'),
        "there is no user message",
    ),
    "assistant last": (
        one_version(f'{USER}, {{ role = "assistant", content = "ok" }}'),
        "the last message must be a user message",
    ),
    "system not first": (
        one_version(f'{USER}, {{ role = "system", content = "s" }}, {USER}'),
        "a system message may only come first",
    ),
    "unknown role": (
        one_version(f'{{ role = "tool", content = "t" }}, {USER}'),
        "'role' must be one of system, user, assistant, not 'tool'",
    ),
    "duplicate version": (one_version(USER) + one_version(USER), "version 1 is defined twice"),
    "unknown key": (
        one_version(USER).replace("description", "descripton"),
        "unknown keys ['descripton']",
    ),
    "no description": (
        one_version(USER).replace('description = "d"', ""),
        "'description' must be a non-empty string",
    ),
    "version zero": (one_version(USER, version=0), "'version' must be an integer of at least 1"),
    "no versions": ("# nothing yet\n", "no versions"),
    "not toml": ("[[versions]\nversion = 1\n", "Expected ']]'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_template_file_fails_loading_naming_the_file(tmp_path: Path, case: str) -> None:
    # Given a good template file and a bad one in the same directory
    text, reason = BAD_FILES[case]
    write(tmp_path, "greet", GREET)
    bad = write(tmp_path, "broken", text)

    # When the directory is loaded
    with pytest.raises(InvalidConfig) as raised:
        TemplateCatalog.from_directory(tmp_path)

    # Then loading fails with a message naming the bad file and what is wrong with it
    assert raised.value.message.startswith(f"template file {bad}: ")
    assert reason in raised.value.message


def test_a_file_name_that_no_request_could_name_is_refused(tmp_path: Path) -> None:
    bad = write(tmp_path, "Greet Me", GREET)

    with pytest.raises(InvalidConfig, match="is not one") as raised:
        TemplateCatalog.from_directory(tmp_path)
    assert str(bad) in raised.value.message


def test_a_missing_directory_is_an_empty_catalogue(tmp_path: Path) -> None:
    assert TemplateCatalog.from_directory(tmp_path / "absent").versions() == []


def test_the_shipped_templates_load_and_render() -> None:
    # Given the templates promptbus ships
    catalog = TemplateCatalog.from_directory(Settings().templates_dir)

    # Then they list by id, then version, with their variables
    listed = [(v.id, v.version, v.variables) for v in catalog.versions()]
    assert listed == sorted(listed)
    assert {
        ("classify", 1, ("labels", "text")),
        ("summarize", 1, ("text",)),
        ("summarize", 2, ("audience", "sentences", "text")),
    } <= set(listed)
    assert all(v.description for v in catalog.versions())

    # And each renders a conversation that ends with the caller's text
    request = GenerateRequest.model_validate(
        {
            "model": "flash",
            "template": {"id": "classify", "variables": {"labels": "spam, ham", "text": "WIN $$$"}},
        }
    )
    expanded = catalog.expand(request)
    assert expanded.messages is not None
    assert [m.role for m in expanded.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.USER,
    ]
    assert expanded.messages[-1].content == "Labels: spam, ham\n\nText: WIN $$$"


def test_expanding_renders_the_newest_version_and_pins_it(catalog: TemplateCatalog) -> None:
    request = template_request({"mood": "kind", "name": "{mood}", "excited": True, "times": 2.5})

    expanded = catalog.expand(request)

    # The newest version, pinned; the variables kept; values rendered as text, never re-read
    assert expanded.template is not None
    assert expanded.template.version == 2
    assert expanded.template.variables == request.template.variables  # type: ignore[union-attr]
    assert expanded.expanded
    assert [(m.role.value, m.content) for m in expanded.conversation()] == [
        ("system", "You are kind. Literal {braces} stay."),
        ("user", "Say hello to Ada."),
        ("assistant", "Hello, Ada!"),
        ("user", "Say hello to {mood}; excited: true; times: 2.5."),
    ]
    # And an expanded request is returned as it is
    assert catalog.expand(expanded) is expanded


def test_a_pinned_version_is_used(catalog: TemplateCatalog) -> None:
    expanded = catalog.expand(template_request({"mood": "calm", "name": "Bo"}, version=1))

    assert expanded.template is not None
    assert expanded.template.version == 1
    assert [m.content for m in expanded.conversation()] == ["You are calm.", "Say hello to Bo."]


def test_a_job_submission_stays_a_job_submission(catalog: TemplateCatalog) -> None:
    submission = JobSubmission.model_validate(
        {
            "model": "flash",
            "template": {"id": "greet", "version": 1, "variables": {"mood": "a", "name": "b"}},
            "metadata": {"k": "v"},
        }
    )

    expanded = catalog.expand(submission)

    assert isinstance(expanded, JobSubmission)
    assert expanded.metadata == {"k": "v"}
    assert expanded.generate_request().messages == expanded.messages


def test_a_missing_variable_is_a_422_naming_it(catalog: TemplateCatalog) -> None:
    with pytest.raises(ValidationFailed) as raised:
        catalog.expand(template_request({"mood": "kind", "excited": False}))

    assert raised.value.status == 422
    assert raised.value.field == "template.variables.name"
    assert "'name'" in raised.value.message
    assert "times" in raised.value.message


def test_an_unknown_variable_is_a_422_naming_it(catalog: TemplateCatalog) -> None:
    with pytest.raises(ValidationFailed) as raised:
        catalog.expand(template_request({"mood": "a", "name": "b", "shout": "x"}, version=1))

    assert raised.value.status == 422
    assert raised.value.field == "template.variables.shout"
    assert "'shout'" in raised.value.message


def test_a_variable_that_renders_an_empty_message_is_a_422(tmp_path: Path) -> None:
    write(tmp_path, "echo", one_version('{ role = "user", content = "{x}" }'))
    catalog = TemplateCatalog.from_directory(tmp_path)
    request = GenerateRequest.model_validate(
        {"model": "flash", "template": {"id": "echo", "variables": {"x": ""}}}
    )

    with pytest.raises(ValidationFailed) as raised:
        catalog.expand(request)
    assert raised.value.field == "template.variables"


def test_an_unknown_id_or_version_is_a_404(catalog: TemplateCatalog) -> None:
    unknown_id = GenerateRequest.model_validate(
        {"model": "flash", "template": {"id": "nope", "variables": {}}}
    )
    with pytest.raises(UnknownTemplate) as by_id:
        catalog.expand(unknown_id)
    with pytest.raises(UnknownTemplate) as by_version:
        catalog.expand(template_request({"mood": "a", "name": "b"}, version=3))

    assert (by_id.value.status, by_id.value.type) == (404, "unknown_template")
    assert by_id.value.field == "template.id"
    assert "greet" in by_id.value.message  # it says what is known
    assert by_version.value.field == "template.version"
    assert "1, 2" in by_version.value.message


def test_the_cache_key_holds_template_id_and_version(catalog: TemplateCatalog) -> None:
    def key(request: GenerateRequest) -> str:
        return cache_key(request, tenant="t", provider="gemini", provider_model="m")

    v1 = catalog.expand(template_request({"mood": "a", "name": "b"}, version=1))
    same = catalog.expand(template_request({"name": "b", "mood": "a"}, version=1))
    other_name = catalog.expand(template_request({"mood": "a", "name": "c"}, version=1))
    plain = GenerateRequest(model="flash", messages=v1.messages)

    # Same template and variables key the same; other variables, or no template, differ
    assert key(v1) == key(same)
    assert key(v1) != key(other_name)
    assert key(v1) != key(plain)
    # And a template request cannot be keyed before it is expanded
    with pytest.raises(ValueError, match="expanded"):
        key(template_request({"mood": "a", "name": "b"}))
