"""Read Prometheus' text format in tests: {(sample name, labels): value}."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from actors.toolkit.metrics import render

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(registry: CollectorRegistry) -> Samples:
    return parse(render(registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it is not there (a labelled child never touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
