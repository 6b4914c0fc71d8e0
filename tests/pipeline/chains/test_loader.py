"""Chain files: a bad one stops start-up with its file, version, step and field named."""

from pathlib import Path

import pytest

from pipeline.catalog import ModelCatalog
from pipeline.chains import load_file
from pipeline.errors import InvalidConfig
from pipeline.settings import Settings
from pipeline.templates import TemplateCatalog

SETTINGS = Settings()
MODELS = ModelCatalog.from_file(SETTINGS.models_file)
TEMPLATES = TemplateCatalog.from_directory(SETTINGS.templates_dir)

GOOD = """
[[versions]]
version = 1
description = "Two steps."
inputs = ["text"]
output = "short"

[[versions.steps]]
name = "short"
kind = "llm"
model = "flash"
messages = [{ role = "user", content = "Shorten: {text}" }]
"""


def load(tmp_path: Path, text: str, name: str = "demo") -> None:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    load_file(path, MODELS, TEMPLATES)


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(GOOD)
    (chain,) = load_file(path, MODELS, TEMPLATES)
    assert (chain.id, chain.version, chain.inputs, chain.output) == ("demo", 1, ("text",), "short")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('model = "flash"', 'model = "nope"'), "step 'short': 'model'"),
        (("{text}", "{txt}"), "step 'short': reads 'txt', which is no input or step"),
        (('kind = "llm"', 'kind = "magic"'), "step 'short': 'kind' must be one of"),
        (('output = "short"', 'output = "long"'), "'output' must name one of the steps"),
        (('name = "short"', 'name = "text"'), "the name is taken"),
        (("Shorten: {text}", "Shorten: {text!r}"), "placeholder '{text!r}' is not allowed"),
        (('content = "Shorten', 'cotent = "Shorten'), "messages[0] must be a table"),
    ],
)
def test_a_bad_file_names_the_file_version_step_and_field(
    tmp_path: Path, change: tuple[str, str], named: str
) -> None:
    with pytest.raises(InvalidConfig) as raised:
        load(tmp_path, GOOD.replace(*change))
    message = str(raised.value)
    assert "demo.toml" in message
    assert "version 1" in message
    assert named in message


def test_a_step_that_depends_on_itself_is_refused(tmp_path: Path) -> None:
    looped = (
        GOOD.replace("Shorten: {text}", "Shorten: {again}")
        + """
[[versions.steps]]
name = "again"
kind = "transform"
op = "pick"
input = "short"
"""
    )
    with pytest.raises(InvalidConfig, match="depend on themselves"):
        load(tmp_path, looped)


def test_the_item_of_a_map_is_read_only_by_the_step_the_map_runs(tmp_path: Path) -> None:
    stray = GOOD.replace("Shorten: {text}", "Shorten: {item}")
    with pytest.raises(InvalidConfig, match=r"reads \{item\} but no map runs it"):
        load(tmp_path, stray)


def test_a_branch_to_a_missing_step_is_refused(tmp_path: Path) -> None:
    branched = (
        GOOD.replace('output = "short"', 'output = "route"')
        + """
[[versions.steps]]
name = "route"
kind = "branch"
on = "short"
cases = { yes = "short" }
default = "nowhere"
"""
    )
    with pytest.raises(InvalidConfig, match="step 'route': runs 'nowhere', which is no step"):
        load(tmp_path, branched)


def test_the_shipped_chains_load() -> None:
    ids = {path.stem for path in SETTINGS.chains_dir.glob("*.toml")}
    assert {"summarize_long", "classify_route", "plan_solve_verify"} <= ids
    for path in SETTINGS.chains_dir.glob("*.toml"):
        assert load_file(path, MODELS, TEMPLATES)
