"""The metrics an HPA asks for are the ones the model server exports, through the shipped adapter rules.

The operator must not import the model server (the operator image does not carry it), so each side
names the metrics on its own: this test is what keeps the names in step. It reads the server's real
/metrics exposition, the operator's HPAs, and docs/prometheus-adapter-values.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.api.components import ComponentSpec
from kubeserve.planning.autoscaler import (
    IN_FLIGHT_METRIC,
    POD_METRICS,
    REQUESTS_COUNTER,
    RPS_METRIC,
    build_autoscaler,
)
from kubeserve_server.metrics import Metrics

ADAPTER_VALUES = Path(__file__).resolve().parents[2] / "docs" / "prometheus-adapter-values.yaml"


def exported() -> dict[str, str]:
    """Sample name -> metric type, from the model server's /metrics after one request."""
    metrics = Metrics("iris")
    tracker = metrics.track("v2")
    tracker.finish(tracker.start())
    text = metrics.exposition().decode()
    return {
        sample.name: family.type
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def adapter_rules() -> dict[str, dict[str, Any]]:
    """The shipped rules, by the name under which the adapter serves each."""
    return {
        rule["name"]["as"]: rule for rule in yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    }


def test_the_server_exports_the_series_the_rules_read() -> None:
    samples = exported()
    assert samples.get(IN_FLIGHT_METRIC) == "gauge"
    assert samples.get(REQUESTS_COUNTER) == "counter"


@pytest.mark.parametrize("scale_metric", sorted(POD_METRICS))
def test_each_hpa_metric_is_served_by_a_shipped_rule_from_an_exported_series(scale_metric: str) -> None:
    spec = ComponentSpec.model_validate(
        {"minReplicas": 1, "maxReplicas": 3, "scaleMetric": scale_metric, "scaleTarget": 4}
    )
    [metric] = build_autoscaler({"name": "iris-predictor"}, "iris-predictor", spec)["spec"]["metrics"]
    asked = metric["pods"]["metric"]["name"]
    rule = adapter_rules().get(asked)
    assert rule is not None, f"no adapter rule serves {asked}, which the HPA asks for"
    series = re.match(r"^(\w+)\{", rule["seriesQuery"])
    assert series is not None and series.group(1) in exported(), rule["seriesQuery"]
    assert re.fullmatch(rule["name"]["matches"], series.group(1)), "the rule's name pattern misses its series"
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }


def test_rps_is_the_rate_of_the_request_counter_and_concurrency_the_gauge_itself() -> None:
    rules = adapter_rules()
    assert set(rules) == set(POD_METRICS.values())
    assert rules[RPS_METRIC]["seriesQuery"].startswith(REQUESTS_COUNTER + "{")
    assert "rate(<<.Series>>" in rules[RPS_METRIC]["metricsQuery"]
    assert rules[IN_FLIGHT_METRIC]["seriesQuery"].startswith(IN_FLIGHT_METRIC + "{")
    assert "rate(" not in rules[IN_FLIGHT_METRIC]["metricsQuery"]
