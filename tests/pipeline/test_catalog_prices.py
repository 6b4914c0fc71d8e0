"""Prices in config/models.toml: a price no answer can be priced at stops start-up."""

from pathlib import Path

import pytest

from pipeline.catalog import ModelCatalog

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
