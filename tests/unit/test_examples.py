"""Every example, and a KServe manifest with only its apiVersion changed, is a valid InferenceService.

Checked both ways: the models parse it, and against the checked-in CRD no field
would be pruned and no CEL rule breaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api import InferenceService
from tests.unit.crd_schema import EXAMPLES_DIR, cel_failures, pruned_paths, requires_cel, schema

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))

KSERVE_MANIFEST = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: flowers
  namespace: models
  annotations:
    serving.kserve.io/autoscalerClass: hpa
  labels:
    networking.kserve.io/visibility: cluster-local
spec:
  predictor:
    minReplicas: 2
    maxReplicas: 5
    scaleMetric: memory
    scaleTarget: 75
    containerConcurrency: 8
    timeout: 60
    canaryTrafficPercent: 20
    serviceAccountName: sa-s3
    nodeSelector:
      pool: inference
    tolerations:
      - key: dedicated
        operator: Equal
        value: inference
        effect: NoSchedule
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions:
                - {key: zone, operator: In, values: [a, b]}
    imagePullSecrets:
      - name: regcred
    priorityClassName: high
    runtimeClassName: nvidia
    labels:
      team: vision
    annotations:
      prometheus.io/scrape: "true"
    logger:
      mode: all
      url: http://message-dumper.default/
    batcher:
      maxBatchSize: 32
      maxLatency: 500
    volumes:
      - name: shm
        emptyDir:
          medium: Memory
    tensorflow:
      storageUri: gs://kfserving-examples/models/tensorflow/flowers
      runtimeVersion: 2.6.2
      protocolVersion: v1
      args: [--rest_api_timeout_in_ms=60000]
      env:
        - name: TF_CPP_MIN_LOG_LEVEL
          value: "2"
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      ports:
        - containerPort: 8080
          name: h2c
          protocol: TCP
      resources:
        requests: {cpu: 500m, memory: 1Gi}
        limits: {cpu: 2, memory: 2Gi}
      volumeMounts:
        - name: shm
          mountPath: /dev/shm
      readinessProbe:
        httpGet: {path: /v1/models/flowers, port: 8080}
        initialDelaySeconds: 5
  transformer:
    minReplicas: 1
    containers:
      - name: kserve-container
        image: kserve/image-transformer:latest
        imagePullPolicy: IfNotPresent
        command: [python, -m, image_transformer]
        args: [--model_name, flowers]
        securityContext:
          runAsNonRoot: true
        resources:
          limits: {cpu: "1", memory: 1Gi}
"""


def load(path: Path) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    return obj


def test_every_case_has_an_example() -> None:
    names = {path.stem for path in EXAMPLES}
    cases = ("sklearn", "xgboost", "lightgbm", "onnx", "torchserve", "tensorflow-serving", "triton", "vllm")
    for case in (*cases, "custom-container", "transformer", "canary", "gpu"):
        assert any(case in name for name in names), f"no example for {case}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_is_a_valid_inference_service(path: Path) -> None:
    obj = load(path)
    assert obj["apiVersion"] == "serving.kubeserve.io/v1beta1"
    parsed = InferenceService.model_validate(obj)
    assert parsed.spec.predictor.implementations(), path.name
    assert pruned_paths(obj, schema("InferenceService")) == []


@requires_cel
@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_passes_the_crd_rules(path: Path) -> None:
    assert cel_failures(load(path), schema("InferenceService")) == []


def kserve_manifest() -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(KSERVE_MANIFEST)
    obj["apiVersion"] = "serving.kubeserve.io/v1beta1"
    return obj


def test_kserve_manifest_parses_and_round_trips() -> None:
    obj = kserve_manifest()
    parsed = InferenceService.model_validate(obj)
    assert parsed.to_dict() == obj
    model = parsed.spec.predictor.effective_model()
    assert model is not None and model.model_format.name == "tensorflow"
    assert model.storage_uri == "gs://kfserving-examples/models/tensorflow/flowers"


def test_kserve_manifest_fits_the_crd() -> None:
    assert pruned_paths(kserve_manifest(), schema("InferenceService")) == []


@requires_cel
def test_kserve_manifest_passes_the_crd_rules() -> None:
    assert cel_failures(kserve_manifest(), schema("InferenceService")) == []


def test_unknown_fields_would_be_pruned() -> None:
    """The offline pruning check itself: a misspelt field is found, with its path."""
    obj = kserve_manifest()
    obj["spec"]["predictor"]["tensorflow"]["storageURI"] = "gs://x/y"
    assert pruned_paths(obj, schema("InferenceService")) == [".spec.predictor.tensorflow.storageURI"]
