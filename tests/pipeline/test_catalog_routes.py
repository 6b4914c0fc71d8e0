"""Routes in config/models.toml: what a model name stands for, and what a bad file says."""

from pathlib import Path

import pytest

from pipeline.catalog import ModelCatalog
from pipeline.errors import UnknownModel

MODELS = """
[models.a]
provider = "gemini"
provider_model = "model-a"
aliases = ["a"]
input_per_million = 1.0
output_per_million = 2.0
rpm = 10

[models.b]
provider = "openai"
provider_model = "model-b"
input_per_million = 0.5
output_per_million = 1.0
tpm = 5000
"""


def _catalog(tmp_path: Path, extra: str = "") -> ModelCatalog:
    path = tmp_path / "models.toml"
    path.write_text(MODELS + extra)
    return ModelCatalog.from_file(path)


def test_a_model_or_alias_is_a_route_of_one_deployment(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    for name in ("a", "model-a"):
        route = catalog.route(name)
        assert route.single
        assert [d.name for d in route.deployments] == ["gemini/model-a"]
    assert catalog.resolve("a").rpm == 10
    assert catalog.resolve("model-b").tpm == 5000


def test_a_route_names_its_deployments_strategy_and_weights(tmp_path: Path) -> None:
    catalog = _catalog(
        tmp_path,
        """
[routes.both]
strategy = "weighted"
fallback_on_blocked = true
deployments = [{ model = "a", weight = 3 }, { model = "model-b" }]
""",
    )
    route = catalog.route("both")
    assert not route.single
    assert route.strategy == "weighted"
    assert route.fallback_on_blocked
    assert [(d.name, d.weight) for d in route.deployments] == [
        ("gemini/model-a", 3.0),
        ("openai/model-b", 1.0),
    ]
    assert "both" in catalog.aliases()
    assert catalog.deployment("openai", "model-b") is route.deployments[1].spec


def test_an_unknown_name_lists_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="known aliases: a"):
        _catalog(tmp_path).route("nope")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[routes.r]\nstrategy = "random"\ndeployments = [{ model = "a" }]', "strategy"),
        ('[routes.r]\ndeployments = [{ model = "zzz" }]', "not listed"),
        ("[routes.r]\ndeployments = []", "needs deployments"),
        ('[routes.r]\ndeployments = [{ model = "a" }, { model = "model-a" }]', "once"),
        ('[routes.r]\ndeployments = [{ model = "a", weight = 0 }]', "positive"),
        ('[routes.a]\ndeployments = [{ model = "model-b" }]', "name of a model"),
        (
            '[models.c]\nprovider = "x"\nprovider_model = "c"\ninput_per_million = 1\n'
            "output_per_million = 1\nrpm = 0",
            "positive integers",
        ),
    ],
)
def test_a_bad_catalogue_fails_naming_the_file_and_the_problem(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        _catalog(tmp_path, "\n" + extra + "\n")
    assert "models.toml" in str(raised.value)
