"""Template and chain variables: values are filled in as text, never read as template syntax."""

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.cache.keys import cache_key
from pipeline.chains.spec import Source
from pipeline.chains.values import label_of, resolve
from pipeline.errors import ChainStepFailed, ValidationFailed
from pipeline.templates import TemplateCatalog, load_file
from schemas import GenerateRequest

# Text a TOML basic string carries once json.dumps has escaped it (no controls, no surrogates).
plain = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=12)
names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")
values = st.one_of(
    st.text(max_size=20),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    # A value that looks like template syntax must come out as it went in.
    st.sampled_from(["{x}", "{{", "}", "{0}", "{a.b}", "{x!r:>9}"]),
)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@st.composite
def templates(draw: st.DrawFn) -> tuple[list[tuple[str, str | None]], list[str]]:
    """A user message as (literal, placeholder) segments, and its variable names."""
    chosen = draw(st.lists(names, min_size=0, max_size=3, unique=True))
    # A message must have text of its own to load: the first literal starts with some.
    segments = [("Q:" + draw(plain), None)] + [(draw(plain), name) for name in chosen]
    segments += [
        (draw(plain), draw(st.sampled_from(chosen)) if chosen and draw(st.booleans()) else None)
    ]
    return segments, chosen


def _catalog(segments: list[tuple[str, str | None]]) -> TemplateCatalog:
    source = "".join(
        literal.replace("{", "{{").replace("}", "}}") + ("" if name is None else "{" + name + "}")
        for literal, name in segments
    )
    toml = (
        '[[versions]]\nversion = 1\ndescription = "generated"\n'
        f'messages = [{{ role = "user", content = {json.dumps(source, ensure_ascii=False)} }}]\n'
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "t.toml"
        path.write_text(toml, encoding="utf-8")
        return TemplateCatalog(load_file(path))


def _request(variables: dict[str, Any]) -> GenerateRequest:
    return GenerateRequest.model_validate(
        {"model": "flash", "template": {"id": "t", "variables": variables}}
    )


@settings(max_examples=80)
@given(template=templates(), data=st.data())
def test_values_render_as_their_text(
    template: tuple[list[tuple[str, str | None]], list[str]], data: st.DataObject
) -> None:
    segments, chosen = template
    variables = {name: data.draw(values) for name in chosen}
    expected = "".join(
        literal + ("" if name is None else _text(variables[name])) for literal, name in segments
    )
    catalog = _catalog(segments)

    expanded = catalog.expand(_request(variables))
    assert expanded.messages is not None
    assert [m.content for m in expanded.messages] == [expected]
    assert expanded.template is not None
    assert expanded.template.version == 1


@given(template=templates(), data=st.data())
def test_missing_or_unknown_variables_are_named(
    template: tuple[list[tuple[str, str | None]], list[str]], data: st.DataObject
) -> None:
    segments, chosen = template
    catalog = _catalog(segments)
    variables = {name: "v" for name in chosen}
    extra = data.draw(names.filter(lambda n: n not in chosen))
    with pytest.raises(ValidationFailed) as unknown:
        catalog.expand(_request({**variables, extra: 1}))
    assert unknown.value.field == f"template.variables.{extra}"
    if chosen:
        dropped = data.draw(st.sampled_from(chosen))
        with pytest.raises(ValidationFailed) as missing:
            catalog.expand(_request({k: v for k, v in variables.items() if k != dropped}))
        assert missing.value.field == f"template.variables.{dropped}"


@given(number=st.integers(-(10**6), 10**6))
def test_a_variable_is_keyed_by_what_it_rendered(number: int) -> None:
    catalog = _catalog([("Q:", None), ("n=", "n")])

    def key(value: object) -> str:
        request = catalog.expand(_request({"n": value}))
        return cache_key(request, tenant="t", provider="gemini", provider_model="m")

    assert key(number) == key(str(number))
    assert key(number) != key(number + 1)


# What orjson reads from a request (its integers fit in 64 bits).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def paths_within(draw: st.DrawFn, value: Any) -> tuple[tuple[str, ...], Any]:
    """A path that leads somewhere in `value`, and what it leads to."""
    path: list[str] = []
    while draw(st.booleans()):
        if isinstance(value, dict) and value:
            part = draw(st.sampled_from(sorted(value)))
            value = value[part]
        elif isinstance(value, list) and value:
            index = draw(st.integers(0, len(value) - 1))
            part, value = str(index), value[index]
        else:
            break
        path.append(part)
    return tuple(path), value


@given(state=json_values, data=st.data())
def test_a_path_into_a_value_resolves_to_what_is_there(state: Any, data: st.DataObject) -> None:
    path, there = data.draw(paths_within(state))
    assert resolve({"input": state}, Source("input", path), "step") == there


@settings(max_examples=100)
@given(
    state=json_values,
    path=st.lists(
        st.text(max_size=4)
        | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=2),
        max_size=3,
    ),
)
@example(state=["a", "b"], path=["\u00b2"])  # found by this property: a ValueError before
def test_any_path_resolves_or_says_what_is_missing(state: Any, path: list[str]) -> None:
    said = "step 'step'"
    try:
        resolve({"input": state}, Source("input", tuple(path)), "step")
    except ChainStepFailed as exc:
        said = str(exc)
    assert said.startswith("step 'step'")


closing = st.text(st.sampled_from(" \t\n.!\"'`"), max_size=6)


@given(word=plain, before=closing, after=closing, upper=st.booleans())
@example(word="a", before="", after=". .", upper=False)  # found by this property
def test_a_label_reads_the_same_however_it_is_trimmed_or_cased(
    word: str, before: str, after: str, upper: bool
) -> None:
    spelled = before + (word.upper() if upper else word) + after
    assert label_of(spelled) == label_of(word.upper() if upper else word)
    assert label_of(label_of(spelled)) == label_of(spelled)
