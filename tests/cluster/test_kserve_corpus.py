"""KServe's own kind of manifests, applied with only the apiVersion changed: each ends as its header says.

Every file in tests/kserve_corpus/ is an InferenceService written the way KServe's documentation
writes them (apiVersion serving.kserve.io/v1beta1), with a first line saying what Kubeserve does
with it:

- `# expect: Ready`: it reaches Ready=True;
- `# expect: False <Reason>`: Ready=False with that reason, a verdict naming what is missing;
- `# expect: condition <Reason>`: some condition carries that reason (the service may still run);
- `# expect: refused <text>`: the API server refuses it (as `kubectl apply` sends it, with strict
  field validation) and its message contains the text, which names the field.

No manifest may end with no verdict at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.cluster.isvc import GROUP, PLURAL, VERSION, Isvcs
from tests.polling import eventually

CORPUS = Path(__file__).resolve().parents[1] / "kserve_corpus"
KSERVE_API_VERSION = "serving.kserve.io/v1beta1"


def _manifests() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    """The verdict a corpus file's first line promises: (kind, detail)."""
    first = path.read_text().splitlines()[0]
    prefix = "# expect: "
    assert first.startswith(prefix), f"{path.name}: the first line must be '{prefix}...'"
    kind, _, detail = first.removeprefix(prefix).partition(" ")
    assert kind in ("Ready", "False", "condition", "refused"), f"{path.name}: unknown expectation {kind!r}"
    assert kind == "Ready" or detail, f"{path.name}: '{kind}' needs a reason or a text"
    return kind, detail


def as_kubeserve(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    assert body["apiVersion"] == KSERVE_API_VERSION, f"{path.name} must be written as KServe writes it"
    body["apiVersion"] = f"{GROUP}/{VERSION}"
    return body


@pytest.mark.parametrize("path", _manifests(), ids=[p.stem for p in _manifests()])
def test_a_kserve_manifest_ends_as_its_header_says(
    kube: k8s.ApiClient, namespace: str, operator: Path, path: Path
) -> None:
    kind, detail = expectation(path)
    body = as_kubeserve(path)
    name = body["metadata"]["name"]
    api = k8s.CustomObjectsApi(kube)
    try:
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
        )
    except ApiException as error:
        assert kind == "refused", f"{path.name} was refused: {error.body}"
        assert error.status in (400, 422), error.body
        assert detail in json.loads(error.body)["message"], error.body
        return
    assert kind != "refused", f"{path.name} was accepted; the corpus says it is refused ({detail})"
    isvcs = Isvcs(kube, namespace)
    if kind == "Ready":
        isvcs.wait_ready(name)
    elif kind == "False":
        ready = isvcs.wait_condition(name, "Ready", status="False", reason=detail)
        assert ready["message"], ready
    else:

        def with_reason() -> dict[str, Any] | None:
            conditions = isvcs.get(name).get("status", {}).get("conditions") or []
            return next((c for c in conditions if c.get("reason") == detail), None)

        found = eventually(with_reason, 30, f"a condition with reason {detail} on {name}")
        assert found["message"], found

        def verdict() -> dict[str, Any] | None:
            ready = isvcs.condition(name, "Ready")
            return ready if ready and ready["status"] in ("True", "False") and ready.get("reason") else None

        eventually(verdict, 30, f"a Ready verdict on {name}")


def test_the_corpus_covers_the_fields_of_kserve_that_the_issue_names() -> None:
    """The corpus is the parity measure: it must keep a manifest for each field and runtime name."""
    text = "\n".join(path.read_text() for path in _manifests())
    for needle in (
        "storage:",
        "storageUris:",
        "autoScaling:",
        "workerSpec:",
        "deploymentStrategy:",
        "logger:",
        "batcher:",
        "containerConcurrency:",
        "timeout:",
        "canaryTrafficPercent:",
        "transformer:",
        "oci://",
        "runtime: kserve-",
        "name: triton",
        "name: huggingface",
        "serving.kserve.io/deploymentMode",
        "serving.kserve.io/autoscalerClass",
    ):
        assert needle in text, f"no corpus manifest has {needle}"
