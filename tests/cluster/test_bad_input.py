"""What only the operator can judge becomes a False condition with a reason and an Event, never a crash.

The API server's own refusals (types, unknown fields, ranges, CEL rules) are
tested in test_api_validation.py; this table is the rest of the bad specs.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.isvc import Isvcs, example, serving_runtime
from tests.polling import eventually

SKLEARN = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}


def model(**fields: Any) -> dict[str, Any]:
    return {"model": {**SKLEARN, **fields}}


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown-format",
        {"model": {"modelFormat": {"name": "pmml"}, "storageUri": "gs://b/m"}},
        "NoRuntime",
        "no runtime can be auto-selected for format pmml",
    ),
    ("missing-runtime", model(runtime="ghost"), "NoRuntime", "no ServingRuntime 'ghost'"),
    ("runtime-wrong-format", model(runtime="triton"), "NoRuntime", "does not serve format sklearn"),
    (
        "protocol-unsupported",
        model(protocolVersion="grpc-v1"),
        "NoRuntime",
        "does not speak protocol grpc-v1",
    ),
    ("disabled-runtime", model(runtime="switched-off"), "NoRuntime", "disabled"),
    ("bad-template", model(runtime="broken-template"), "InvalidRuntimeTemplate", "'nope' is undefined"),
    ("unknown-accelerator", model(accelerator="nvidia-v100"), "UnknownAcceleratorClass", "nvidia-v100"),
    (
        "gpu-nobody-has",
        model(resources={"limits": {"nvidia.com/gpu": "64"}}),
        "Unschedulable",
        "Insufficient nvidia.com/gpu",
    ),
    ("accelerator-without-nodes", model(accelerator="amd-mi300"), "Unschedulable", "cannot be scheduled"),
    (
        "missing-service-account",
        {**model(), "serviceAccountName": "nobody"},
        "FailedCreate",
        'serviceaccount "nobody" not found',
    ),
]


@pytest.fixture
def bad_services(kube: k8s.ApiClient, namespace: str, operator: object) -> Isvcs:
    """Every bad spec of the table applied at once, beside the runtimes some of them name."""
    objects = k8s.CustomObjectsApi(kube)
    for runtime in (
        serving_runtime("switched-off", disabled=True),
        serving_runtime("broken-template", container={"args": ["{{ nope }}"]}),
    ):
        objects.create_namespaced_custom_object(
            "serving.kubeserve.io", "v1beta1", namespace, "servingruntimes", runtime
        )
    isvcs = Isvcs(kube, namespace)
    for case, predictor, _, _ in BAD:
        isvcs.apply(
            {
                "apiVersion": "serving.kubeserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": case},
                "spec": {"predictor": predictor},
            }
        )
    return isvcs


@pytest.mark.parametrize(
    ("case", "reason", "words"), [(c, r, w) for c, _, r, w in BAD], ids=[c for c, *_ in BAD]
)
def test_bad_spec_gets_a_false_condition_and_an_event(
    bad_services: Isvcs, kube: k8s.ApiClient, namespace: str, case: str, reason: str, words: str
) -> None:
    condition = bad_services.wait_condition(case, "PredictorReady", status="False", reason=reason, timeout=20)
    assert words in condition["message"]
    ready = bad_services.condition(case, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", reason)
    core = k8s.CoreV1Api(kube)
    eventually(
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.involved_object.name == case and e.reason == reason and e.type == "Warning"
        ],
        what=f"a Warning event {reason} on {case}",
    )


def test_bad_services_do_not_stop_the_operator_serving_others(bad_services: Isvcs) -> None:
    bad_services.apply(example("sklearn-iris.yaml"))
    bad_services.wait_ready("sklearn-iris")
    fixed = {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "unknown-accelerator"},
        "spec": {"predictor": model(accelerator="nvidia-h100")},
    }
    bad_services.apply(fixed)
    bad_services.wait_ready("unknown-accelerator")
