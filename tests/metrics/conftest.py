"""Helpers for reading the metrics endpoints the way Prometheus and operators do."""

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)


class Scrape:
    """One scrape of METRICS_PATH/prometheus: exposition names and types, and sample values."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types = dict(TYPE_LINE.findall(text))  # exposition name -> type, exactly as written
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {}
        for family in self.families.values():
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = sample.value

    def value(self, name: str, **labels) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        """Every name a query can use: TYPE lines (also families without samples) and sample names."""
        return set(self.types) | {name for name, _labels in self.samples}


@pytest.fixture
def scrape(client):
    def do(path: str = "/metrics/prometheus") -> Scrape:
        response = client.get(path)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(response.content.decode())

    return do
