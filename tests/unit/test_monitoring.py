"""/metrics: the state figures read from the reconciler at scrape time, beside the counters."""

from __future__ import annotations

from typing import Any

from kubeserve.cache.observed import ClusterView
from kubeserve.config import OperatorConfig
from kubeserve.monitoring import exposition
from kubeserve.reconciler import Reconciler


def service(name: str, version: str, conditions: list[dict[str, str]] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"namespace": "ml", "name": name, "uid": name, "resourceVersion": version}
    }
    if conditions is not None:
        body["status"] = {"conditions": conditions}
    return body


def test_services_are_counted_by_condition_and_an_unwritten_one_is_unknown() -> None:
    view = ClusterView()
    view.record("InferenceService", "ADDED", service("ready", "1", [{"type": "Ready", "status": "True"}]))
    view.record(
        "InferenceService",
        "ADDED",
        service(
            "waiting",
            "2",
            [{"type": "Ready", "status": "False"}, {"type": "PredictorReady", "status": "False"}],
        ),
    )
    view.record("InferenceService", "ADDED", service("new", "3", None))
    reconciler = Reconciler(None, view, OperatorConfig())  # type: ignore[arg-type]  # no API call is made

    lines = set(exposition(reconciler).decode().splitlines())

    for line in (
        'kubeserve_inference_services{condition="Ready",status="True"} 1.0',
        'kubeserve_inference_services{condition="Ready",status="False"} 1.0',
        'kubeserve_inference_services{condition="Ready",status="Unknown"} 1.0',
        'kubeserve_inference_services{condition="PredictorReady",status="False"} 1.0',
        "kubeserve_leader 1.0",
        "kubeserve_reconciles_in_progress 0.0",
    ):
        assert line in lines
    assert not any(
        line.startswith('kubeserve_inference_services{condition="TransformerReady"') for line in lines
    )
    assert any(line.startswith("# TYPE kubeserve_reconciles_total counter") for line in lines)
