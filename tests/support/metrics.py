"""Scraping `/metrics` over HTTP and reading series out of it, as Prometheus would."""

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples."""

    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """The values `label` takes among the samples named `name`."""
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def parse(text: str) -> Scrape:
    """The samples of a Prometheus text exposition."""
    samples = tuple(
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    )
    return Scrape(samples)


async def scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    """GET `url` (a /metrics endpoint) and parse the text exposition."""
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
        return parse(await resp.text())
