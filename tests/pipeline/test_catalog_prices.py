"""Prices in config/models.toml: a price no answer can be priced at stops start-up."""

from pathlib import Path

import pytest

from pipeline.catalog import ModelCatalog
from pipeline.settings import Settings
from schemas import Cost, Usage

NEGATIVE_PRICE = """
[models.a]
provider = "gemini"
provider_model = "model-a"
input_per_million = -0.30
output_per_million = 2.50
"""


def test_a_negative_price_is_refused_when_the_catalogue_loads(tmp_path: Path) -> None:
    # Given a models file with a negative price
    path = tmp_path / "models.toml"
    path.write_text(NEGATIVE_PRICE)

    # When it is loaded, Then it is refused, naming the file (as a bad route is)
    with pytest.raises(ValueError, match=r"models\.toml"):
        ModelCatalog.from_file(path)


BATCH_PRICED = """
[models.a]
provider = "gemini"
provider_model = "model-a"
input_per_million = 0.30
output_per_million = 2.50
batch_input_per_million = 0.15
batch_output_per_million = 1.25

[models.b]
provider = "openai"
provider_model = "model-b"
input_per_million = 0.40
output_per_million = 1.60
"""


def test_a_batch_costs_the_batch_price_and_a_model_without_one_its_list_price(
    tmp_path: Path,
) -> None:
    # Given a model with batch prices and one without
    path = tmp_path / "models.toml"
    path.write_text(BATCH_PRICED)
    catalog = ModelCatalog.from_file(path)
    usage = Usage(input_tokens=1_000_000, output_tokens=2_000_000, total_tokens=3_000_000)

    # When usage is priced in a batch, Then the first costs its batch price, the second its list
    assert catalog.resolve("model-a").batch_cost(usage) == Cost(
        input_usd=0.15, output_usd=2.5, total_usd=2.65
    )
    assert catalog.resolve("model-a").cost(usage).total_usd == 5.3
    assert catalog.resolve("model-b").batch_cost(usage) == catalog.resolve("model-b").cost(usage)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("batch_input_per_million = 0.15", "give both"),
        ("batch_output_per_million = 1.25", "given only batch_output_per_million"),
        ("batch_input_per_million = -1\nbatch_output_per_million = 1", "zero or more"),
    ],
)
def test_half_a_batch_price_or_a_negative_one_is_refused(
    tmp_path: Path, lines: str, problem: str
) -> None:
    # Given a model with one batch price, or a negative one
    path = tmp_path / "models.toml"
    path.write_text(NEGATIVE_PRICE.replace("-0.30", "0.30") + lines + "\n")

    # When it is loaded, Then it is refused, naming the file and the problem
    with pytest.raises(ValueError, match=r"models\.toml") as caught:
        ModelCatalog.from_file(path)
    assert problem in str(caught.value)


def test_every_gemini_model_shipped_costs_half_its_list_price_in_a_batch() -> None:
    # Given the catalogue promptbus ships
    catalog = ModelCatalog.from_file(Settings().models_file)

    # Then each Gemini model's batch price is half its interactive price
    gemini = [spec for spec in catalog.specs() if spec.provider == "gemini"]
    assert gemini
    for spec in gemini:
        assert spec.batch_input_per_million == pytest.approx(spec.input_per_million / 2)
        assert spec.batch_output_per_million == pytest.approx(spec.output_per_million / 2)
