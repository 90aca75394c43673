"""A tenant's hostile spec is refused by name and costs nobody else anything.

Each case is applied by a tenant with only namespace-scoped RBAC, to an operator
of the test's own; while the operator handles it, its /healthz answers within
100 ms, its peak RSS stays under twice its baseline, and a good service in
another namespace becomes Ready within 2 s (tests/cluster/hostile.py measures).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.cluster.hostile import (
    HealthyOperator,
    Tenant,
    assert_no_cost_to_others,
    measure,
    operator_with_endpoints,
)
from tests.cluster.isvc import Isvcs, example, serving_runtime
from tests.cluster.test_poisoned_objects import deep_service, kubectl, ready_condition
from tests.polling import eventually

HOSTILE_TEMPLATES = [
    ("percent-format", "{{ '%100000000d' % 1 }}", "operator '%' is not allowed"),
    ("center", "{{ 'a'|center(100000000) }}", "filter 'center' is not allowed"),
    (
        "nested-loops",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "a 'for' loop is not allowed",
    ),
    ("lipsum", "{{ '%s' % (lipsum,) }}", "operator '%' is not allowed"),
]
"""(case, a container arg of the tenant's ServingRuntime, words of the Ready condition's message)."""


def _runtime(name: str, arg: str) -> dict[str, Any]:
    return serving_runtime(name, container={"args": [arg]})


def _service(name: str, runtime: str | None = None) -> dict[str, Any]:
    body = example("sklearn-iris.yaml")
    body["metadata"]["name"] = name
    if runtime:
        body["spec"]["predictor"]["model"]["runtime"] = runtime
    return body


@pytest.fixture(scope="module")
def bystanders(kube: k8s.ApiClient) -> Iterator[Isvcs]:
    """Another namespace's services, which no tenant's spec may slow down."""
    core = k8s.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"kubeserve.io/test": "true"}}})
    eventually(lambda: core.list_namespaced_service_account(name).items, what=f"a ServiceAccount in {name}")
    yield Isvcs(kube, name)
    core.delete_namespace(name)


@pytest.fixture
def watched(
    kubeconfig: str, installed: None, session_operator_stopped: None, bystanders: Isvcs, tmp_path: Path
) -> Iterator[HealthyOperator]:
    """The only operator reconciling, warmed up by one service Ready before the baseline is read."""
    with operator_with_endpoints(kubeconfig, tmp_path / "operator.log") as operator:
        bystanders.apply(_service("warm-up"))
        bystanders.wait_ready("warm-up")
        yield operator


@pytest.fixture
def tenant(kube: k8s.ApiClient, kubeconfig: str, namespace: str, installed: None) -> Iterator[Tenant]:
    tenant = Tenant(kube, kubeconfig, namespace)
    yield tenant
    tenant.remove_services()


def test_the_tenant_writes_only_in_its_namespace(tenant: Tenant, bystanders: Isvcs) -> None:
    tenant.create_runtime(_runtime("own", "--ok"))
    with pytest.raises(ApiException) as refused:
        tenant.create_runtime(_runtime("elsewhere", "--ok"), namespace=bystanders.namespace)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'User "tenant" cannot create resource "servingruntimes"' in message


@pytest.mark.parametrize(
    ("case", "arg", "words"), HOSTILE_TEMPLATES, ids=[case for case, _, _ in HOSTILE_TEMPLATES]
)
def test_a_hostile_runtime_template_is_refused_at_no_cost_to_others(
    watched: HealthyOperator, tenant: Tenant, bystanders: Isvcs, case: str, arg: str, words: str
) -> None:
    def apply_hostile() -> None:
        tenant.create_runtime(_runtime(case, arg))
        tenant.isvcs.apply(_service(case, runtime=case))

    cost = measure(
        watched, apply_hostile, lambda: tenant.has_verdict(case), bystanders, _service(f"good-{case}")
    )
    print(f"{case}: {cost}")
    ready = tenant.isvcs.condition(case, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "InvalidRuntimeTemplate")
    assert words in ready["message"]
    assert_no_cost_to_others(cost)


def test_a_deeply_nested_service_is_refused_at_no_cost_to_others(
    watched: HealthyOperator, tenant: Tenant, kubeconfig: str, bystanders: Isvcs
) -> None:
    """An affinity 2000 levels deep once stopped every watch; it is written and read with kubectl, as the
    kubernetes package's own JSON handling hits the recursion limit (and so does `remove_services`)."""
    namespace = tenant.namespace

    def refused() -> bool:
        ready = ready_condition(kubeconfig, namespace, "deep")
        return ready is not None and ready["status"] == "False"

    def apply_hostile() -> None:
        kubectl(kubeconfig, namespace, "--as", "tenant", "create", "-f", "-", text=deep_service("deep", 2000))

    try:
        cost = measure(watched, apply_hostile, refused, bystanders, _service("good-deep"))
        print(f"deep: {cost}")
        ready = ready_condition(kubeconfig, namespace, "deep")
        assert ready is not None and (ready["status"], ready["reason"]) == ("False", "TooDeep"), ready
        assert_no_cost_to_others(cost)
    finally:
        kubectl(kubeconfig, namespace, "delete", "isvc", "deep", "--wait")
