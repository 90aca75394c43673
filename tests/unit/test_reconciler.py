"""A service the operator cannot plan (a bug in planning, a spec nested too deep) gets a verdict."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kubeserve.apply.client import ApiError
from kubeserve.apply.decoding import SPEC_DEPTH, loads
from kubeserve.apply.resources import EVENT, INFERENCE_SERVICE, Resource
from kubeserve.cache.observed import ClusterView
from kubeserve.config import OperatorConfig
from kubeserve.planning.plan import PlanInputs
from kubeserve.reconciler import Reconciler
from tests.unit.planning_inputs import SKLEARN

NAMESPACE, NAME = "ml", "iris"


class FakeApi:
    """The KubeApi calls a reconcile makes, answered in memory: discovery, the status apply and Events.

    A fake, for what is hard to provoke on a real API server (a bug in
    planning); the real API server (tests/cluster) covers the wiring.
    """

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def serves(self, resource: Resource) -> bool:
        return False

    async def apply(
        self, resource: Resource, obj: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        assert (resource, subresource) == (INFERENCE_SERVICE, "status"), "only the status is written"
        self.statuses.append(obj["status"])
        version = str(int(self.stored["metadata"]["resourceVersion"]) + 1)
        self.stored = {
            **self.stored,
            "metadata": {**self.stored["metadata"], "resourceVersion": version},
            "status": obj["status"],
        }
        return self.stored

    async def create(
        self, resource: Resource, namespace: str | None, obj: dict[str, Any], guarded: bool = True
    ) -> dict[str, Any]:
        assert resource == EVENT
        self.events.append(obj)
        return obj


def isvc(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubeserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "u-1",
            "resourceVersion": "1",
            "generation": 1,
        },
        "spec": spec,
    }


def reconciler_for(body: dict[str, Any]) -> tuple[Reconciler, FakeApi]:
    view = ClusterView()
    view.record("InferenceService", "ADDED", body)
    api = FakeApi(body)
    reconciler = Reconciler(api, view, OperatorConfig())  # type: ignore[arg-type]
    reconciler.synced.set()
    return reconciler, api


def ready(api: FakeApi) -> dict[str, Any]:
    conditions = api.statuses[-1]["conditions"]
    found: dict[str, Any] = next(c for c in conditions if c["type"] == "Ready")
    return found


def bugs() -> float:
    value = REGISTRY.get_sample_value(
        "kubeserve_reconcile_errors_total", {"kind": "InferenceService", "cause": "bug"}
    )
    return value or 0.0


def test_a_bug_in_planning_is_logged_counted_shown_and_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[PlanInputs] = []

    def failing_plan(service: object, inputs: PlanInputs) -> None:
        attempts.append(inputs)
        raise KeyError("a bug")

    monkeypatch.setattr("kubeserve.reconciler.plan_service", failing_plan)
    before = bugs()

    async def scenario() -> FakeApi:
        reconciler, api = reconciler_for(isvc(SKLEARN))
        reconciler.enqueue(NAMESPACE, NAME)
        for _ in range(100):  # the first retry comes after 0.5 s
            await asyncio.sleep(0.05)
            if len(attempts) >= 2:
                break
        assert (NAMESPACE, NAME) in reconciler._running, "the service's worker is still there"
        await reconciler.stop()
        return api

    api = asyncio.run(scenario())
    assert len(attempts) >= 2, "retried with backoff"
    assert bugs() - before >= 2
    condition = ready(api)
    assert (condition["status"], condition["reason"]) == ("False", "InternalError")
    assert "KeyError" in condition["message"] and "a bug" not in condition["message"]
    assert len(api.statuses) == 1, "the same failure again writes nothing new"
    assert [(e["type"], e["reason"]) for e in api.events] == [("Warning", "InternalError")]
    failures = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert failures and failures[0].exc_info is not None, "logged with its traceback"


def test_a_new_spec_ends_a_retry_backoff_and_the_operators_own_writes_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service whose reconciles failed while the API server was unwell waits out a backoff that
    doubles up to a minute: the user's change after the outage must not wait with it."""

    async def scenario() -> None:
        attempts: asyncio.Queue[float] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def unavailable(service: object, inputs: PlanInputs) -> None:
            attempts.put_nowait(loop.time())
            raise ApiError(503, "etcdserver: request timed out")

        monkeypatch.setattr("kubeserve.reconciler.plan_service", unavailable)
        body = isvc(SKLEARN)
        reconciler, _ = reconciler_for(body)
        reconciler.enqueue(NAMESPACE, NAME, 1)
        for _ in range(3):  # after 0.5 s, then 1 s: the next wait is 2 s
            await attempts.get()
        await asyncio.sleep(0.1)
        status_only = {**body, "metadata": {**body["metadata"], "resourceVersion": "2"}}
        reconciler.view.record("InferenceService", "MODIFIED", status_only)
        reconciler.enqueue(NAMESPACE, NAME, 1)
        with pytest.raises(TimeoutError):  # the same generation again waits out the backoff
            await asyncio.wait_for(attempts.get(), 0.5)
        changed = {**body, "metadata": {**body["metadata"], "resourceVersion": "3", "generation": 2}}
        reconciler.view.record("InferenceService", "MODIFIED", changed)
        told = loop.time()
        reconciler.enqueue(NAMESPACE, NAME, 2)
        tried = await asyncio.wait_for(attempts.get(), 1.0)
        assert tried - told < 0.2, "a new generation is tried at once, not after the 2 s backoff"
        await reconciler.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.parametrize("levels", [SPEC_DEPTH, 900, 5000])
def test_a_spec_nested_too_deep_is_refused_with_a_condition_and_an_event(levels: int) -> None:
    """900 levels still decode (under Python's recursion limit); 5000 are pruned by the decoder."""
    text = json.dumps(isvc({**SKLEARN, "predictor": {**SKLEARN["predictor"], "affinity": "AFFINITY"}}))
    body = loads(text.replace('"AFFINITY"', '{"a":' * levels + "{}" + "}" * levels))
    reconciler, api = reconciler_for(body)
    asyncio.run(reconciler.reconcile(NAMESPACE, NAME))
    condition = ready(api)
    assert (condition["status"], condition["reason"]) == ("False", "TooDeep")
    assert condition["message"].startswith("spec.predictor.affinity.a.a")
    assert f"nested deeper than {SPEC_DEPTH} levels" in condition["message"]
    assert [(e["type"], e["reason"]) for e in api.events] == [("Warning", "TooDeep")]


def test_a_namespace_being_deleted_ends_the_reconcile_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[tuple[str, str]] = []

    async def refused(self: Reconciler, namespace: str, name: str) -> None:
        attempts.append((namespace, name))
        raise ApiError(
            403,
            'deployments.apps "iris-predictor" is forbidden: unable to create new content in namespace '
            "ml because it is being terminated",
        )

    monkeypatch.setattr(Reconciler, "reconcile", refused)

    async def scenario() -> tuple[Reconciler, FakeApi]:
        reconciler, api = reconciler_for(isvc(SKLEARN))
        reconciler.enqueue(NAMESPACE, NAME)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if (NAMESPACE, NAME) not in reconciler._running:
                break
        return reconciler, api

    reconciler, api = asyncio.run(scenario())
    assert attempts == [(NAMESPACE, NAME)], "not retried"
    assert (NAMESPACE, NAME) not in reconciler._running
    assert api.statuses == [] and api.events == [], "nothing written into the namespace being deleted"
    assert not [r for r in caplog.records if r.levelno >= 30], "no warning or error for it"


def test_a_pass_over_every_service_takes_those_not_ready_for_their_spec_first() -> None:
    """An operator killed again and again, each life shorter than a pass over all, still reaches the
    services someone waits for (the chaos run's kill phase never ended when it went by name)."""
    ready_now = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    statuses: dict[str, dict[str, Any]] = {
        "a-settled": ready_now,
        "b-new": {},
        "c-changed": {**ready_now, "observedGeneration": 0},
        "d-failing": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]},
        "e-settled": ready_now,
    }
    view = ClusterView()
    for name, status in statuses.items():
        body = isvc(SKLEARN)
        view.record(
            "InferenceService",
            "ADDED",
            {**body, "metadata": {**body["metadata"], "name": name}, "status": status},
        )
    reconciled: list[str] = []

    async def scenario() -> None:
        reconciler = Reconciler(FakeApi({}), view, OperatorConfig())  # type: ignore[arg-type]
        reconciler._slots = asyncio.Semaphore(1)

        async def reconcile(namespace: str, name: str) -> None:
            reconciled.append(name)

        reconciler.reconcile = reconcile  # type: ignore[method-assign]
        reconciler.enqueue_all()
        workers = list(reconciler._running.values())
        reconciler.synced.set()
        await asyncio.gather(*workers)

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert reconciled == ["b-new", "c-changed", "d-failing", "a-settled", "e-settled"]
