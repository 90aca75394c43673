"""The view: what it keeps of a body, which version wins, and how the watches fill and correct it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from kubeserve.apply.client import ApiError
from kubeserve.apply.decoding import dumps
from kubeserve.apply.resources import DEPLOYMENT, Resource
from kubeserve.cache.observed import LAST_APPLIED, ClusterView, Entry, slim
from kubeserve.cache.watches import Follower, Scope, Watched, _owner
from kubeserve.config import OperatorConfig
from kubeserve.planning.naming import LABEL_SERVICE
from kubeserve.reconciler import Reconciler


def body(
    name: str, version: str, uid: str = "u-1", service: str | None = "iris", **extra: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": uid,
        "resourceVersion": version,
        "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:status": {}}}],
        "ownerReferences": [{"uid": "isvc-uid"}],
    }
    if service:
        metadata["labels"] = {LABEL_SERVICE: service}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, **extra}


def test_a_pod_keeps_its_labels_phase_and_conditions_only() -> None:
    pod = body("p", "1", spec={"containers": [{"image": "x"}]})
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready"}], "containerStatuses": [{}]}
    kept = slim("Pod", pod)
    assert kept["status"] == {"phase": "Running", "conditions": [{"type": "Ready"}]}
    assert "spec" not in kept and "managedFields" not in kept["metadata"]
    assert kept["metadata"]["labels"] == {LABEL_SERVICE: "iris"}
    assert "managedFields" in pod["metadata"] and "spec" in pod, "the event's own body is left alone"


def test_a_pod_keeps_only_its_failing_containers_and_their_last_failure() -> None:
    pod = body("p", "1")
    crashed = {"exitCode": 1, "reason": "Error", "message": "model.joblib: invalid load key"}
    pod["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "storage-initializer", "state": {"terminated": {"exitCode": 0}}, "image": "i"}
        ],
        "containerStatuses": [
            {"name": "starting", "state": {"waiting": {"reason": "ContainerCreating"}}},
            {
                "name": "kserve-container",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
                "lastState": {"terminated": crashed},
                "imageID": "sha256:...",
            },
        ],
    }
    kept = slim("Pod", pod)["status"]
    assert "initContainerStatuses" not in kept, "a container that succeeded is not kept"
    assert kept["containerStatuses"] == [
        {
            "name": "kserve-container",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            "lastState": {"terminated": crashed},
        }
    ]


def test_a_childs_last_applied_annotation_goes_but_a_services_stays() -> None:
    annotations = {LAST_APPLIED: "{...}", "mine": "kept"}
    child = body("d", "1")
    child["metadata"]["annotations"] = annotations
    assert slim("Deployment", child)["metadata"]["annotations"] == {"mine": "kept"}
    assert slim("InferenceService", child)["metadata"]["annotations"] == annotations


def test_each_read_is_a_fresh_copy() -> None:
    view = ClusterView()
    view.record("Deployment", None, body("d", "1", spec={"replicas": 1}))
    view.get("Deployment", "ns", "d")["spec"]["replicas"] = 5  # type: ignore[index]
    assert view.get("Deployment", "ns", "d")["spec"] == {"replicas": 1}  # type: ignore[index]


def deployment(index: int) -> dict[str, Any]:
    """A Deployment as the API server returns one: what differs between services is names, uids, times."""
    name = f"m-{index:04d}-predictor"
    container = {
        "name": "kserve-container",
        "image": "kubeserve/server:0.1.0",
        "args": ["--model_name", f"m-{index:04d}", "--model_dir", "/mnt/models", "--http_port", "8080"],
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/m-{index:04d}", "port": 8080},
            "periodSeconds": 1,
        },
        "resources": {
            "limits": {"cpu": "100m", "memory": "64Mi"},
            "requests": {"cpu": "5m", "memory": "16Mi"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return body(
        name,
        str(1000 + index),
        uid=f"{index:08x}-0000-4000-8000-000000000000",
        service=f"m-{index:04d}",
        spec={
            "replicas": 1,
            "selector": {"matchLabels": {LABEL_SERVICE: f"m-{index:04d}", "component": "predictor"}},
            "template": {
                "metadata": {"labels": {LABEL_SERVICE: f"m-{index:04d}", "component": "predictor"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
        status={
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": f"2026-12-03T14:{index % 60:02d}:00Z",
                }
            ],
        },
    )


def test_bodies_are_kept_compressed_against_the_first_of_their_kind() -> None:
    """The view holds every child of every service: each one's text would be its memory per service."""
    dictionaries: dict[str, bytes] = {}
    bodies = [deployment(index) for index in range(50)]
    entries = [Entry.of("Deployment", each, dictionaries) for each in bodies]
    assert [entry.body() for entry in entries] == [slim("Deployment", each) for each in bodies]
    assert all(entry.dictionary is dictionaries["Deployment"] for entry in entries), "one dictionary, shared"
    text = len(dumps(slim("Deployment", bodies[1])))
    assert all(len(entry.packed) < text / 5 for entry in entries[1:]), (text, len(entries[1].packed))
    pod = Entry.of("Pod", body("p", "1", status={"phase": "Running"}), dictionaries)
    assert pod.dictionary is not entries[0].dictionary and pod.body()["status"] == {"phase": "Running"}


def test_an_older_or_the_same_version_changes_nothing() -> None:
    view = ClusterView()
    assert view.record("Deployment", None, body("d", "7", spec={"replicas": 2}))
    assert not view.record("Deployment", "MODIFIED", body("d", "6", spec={"replicas": 1}))
    assert not view.record("Deployment", "MODIFIED", body("d", "7", spec={"replicas": 2}))
    assert view.get("Deployment", "ns", "d")["spec"] == {"replicas": 2}  # type: ignore[index]
    assert view.record("Deployment", None, body("d", "3", uid="u-2")), "a new object of the same name"
    assert view.record("Deployment", "DELETED", body("d", "3", uid="u-2"))
    assert view.get("Deployment", "ns", "d") is None
    assert not view.record("Deployment", "DELETED", body("d", "3", uid="u-2")), "already gone"


def test_children_by_service_and_owner() -> None:
    view = ClusterView()
    view.record("Deployment", None, body("a", "1"))
    view.record("Deployment", None, body("b", "1", uid="u-2", service="other"))
    view.record(
        "Deployment",
        None,
        {
            **body("c", "1", uid="u-3"),
            "metadata": {**body("c", "1", uid="u-3")["metadata"], "ownerReferences": [{"uid": "stranger"}]},
        },
    )
    assert [d["metadata"]["name"] for d in view.owned_by("Deployment", "ns", "iris", "isvc-uid")] == ["a"]
    assert {d["metadata"]["name"] for d in view.owned_by("Deployment", "ns", "iris", None)} == {"a", "c"}
    view.record("Deployment", "DELETED", body("a", "2"))
    assert view.owned_by("Deployment", "ns", "iris", "isvc-uid") == []
    assert sorted(view.keys("Deployment")) == [("ns", "b"), ("ns", "c")]


@pytest.mark.parametrize(
    ("patterns", "namespace", "wanted"),
    [
        ((), "any", True),
        (("team-a", "team-b"), "team-b", True),
        (("team-a",), "team-c", False),
        (("team-*",), "team-c", True),
        (("!kube-*",), "kube-system", False),
        (("!kube-*",), "default", True),
        (("myapp-*, !*-pr-*, *pr-123",), "myapp-pr-123", True),
        (("myapp-*, !*-pr-*, *pr-123",), "myapp-pr-456", False),
        (("myapp-*, !*-pr-*, *pr-123",), "otherapp-pr-123", False),
    ],
)
def test_namespace_patterns_as_kopf_reads_them(
    patterns: tuple[str, ...], namespace: str, wanted: bool
) -> None:
    assert Scope(patterns).wanted(namespace) is wanted
    assert Scope(patterns).wanted(None), "cluster-scoped objects are always followed"


def test_plain_names_are_watched_one_by_one_and_patterns_cluster_wide() -> None:
    assert Scope(("a", "b")).namespaces() == ["a", "b"]
    assert Scope(("a", "team-*")).namespaces() == [None]
    assert Scope().namespaces() == [None]


class Lists:
    """Our API client's list and watch, answered from a script: the 410 paths a live cluster rarely shows."""

    def __init__(self, pages: list[list[dict[str, Any]]], watch: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.events = watch
        self.calls: list[dict[str, str]] = []
        self.expire_first_continue = True

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self.calls.append(params)
        if "continue" in params and self.expire_first_continue:
            self.expire_first_continue = False
            raise ApiError(410, "The provided continue parameter is too old")
        index = int(params.get("continue", "0"))
        snapshot = "40" if self.expire_first_continue else "50"
        following = str(index + 1) if index + 1 < len(self.pages) else ""
        return {
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": snapshot, "continue": following},
            "items": self.pages[index],
        }

    async def watch(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        for event in self.events:
            yield event
        self.events = [{"type": "ERROR", "object": {"code": 410}}]


def test_lists_in_pages_starts_over_when_a_page_expires_and_forgets_what_a_new_list_lacks() -> None:
    async def scenario() -> tuple[Reconciler, Lists, list[tuple[str, str]]]:
        view = ClusterView()
        view.record("Deployment", None, body("deleted-while-away", "3", uid="u-9"))
        item = body("a", "10")
        del item["apiVersion"], item["kind"]  # list items carry neither
        api = Lists(
            [[item], [{**item, "metadata": {**item["metadata"], "name": "b", "uid": "u-2"}}]],
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "60"}}}],
        )
        reconciler = Reconciler(api, view, OperatorConfig())  # type: ignore[arg-type]
        follower = Follower(
            api, reconciler, Watched(DEPLOYMENT, _owner, child=True), None, Scope(), asyncio.Lock()
        )  # type: ignore[arg-type]
        version = await follower._list()
        assert version == "50"
        assert await follower._watch(version) == "60"
        enqueued: list[tuple[str, str]] = []
        reconciler.enqueue = lambda namespace, name: enqueued.append((namespace, name))  # type: ignore[method-assign]
        return reconciler, api, enqueued

    reconciler, api, enqueued = asyncio.run(scenario())
    assert [c.get("continue") for c in api.calls] == [None, "1", None, "1"]
    assert all(c["labelSelector"] == LABEL_SERVICE for c in api.calls)
    assert sorted(reconciler.view.keys("Deployment")) == [("ns", "a"), ("ns", "b")]
    assert reconciler.view.get("Deployment", "ns", "a")["kind"] == "Deployment"  # type: ignore[index]
    assert enqueued == [], "nothing is reconciled before every kind is listed"


class Broken:
    """A list that fails once with an error nobody expected, then holds a poisoned and a good object."""

    def __init__(self) -> None:
        self.calls = 0

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug")
        return {
            "metadata": {"resourceVersion": "50"},
            "items": [body("poisoned", "11", uid="u-2"), body("a", "10")],
        }

    async def watch(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()  # a quiet watch
        yield {}


class PoisonedView(ClusterView):
    """A view with a bug that only one object provokes."""

    def record(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        if body["metadata"]["name"] == "poisoned":
            raise RecursionError("maximum recursion depth exceeded")
        return super().record(kind, event_type, body)


def test_a_follower_survives_an_unexpected_error_and_an_object_it_cannot_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Reconciler, Broken]:
        api = Broken()
        reconciler = Reconciler(api, PoisonedView(), OperatorConfig())  # type: ignore[arg-type]
        follower = Follower(
            api, reconciler, Watched(DEPLOYMENT, _owner, child=True), None, Scope(), asyncio.Lock()
        )  # type: ignore[arg-type]
        task = asyncio.create_task(follower.run())
        await asyncio.wait_for(follower.listed.wait(), 5)
        assert not task.done()
        task.cancel()
        return reconciler, api

    reconciler, api = asyncio.run(scenario())
    assert api.calls == 2, "listed again after the failure"
    assert reconciler.view.keys("Deployment") == [("ns", "a")], "the good object, past the poisoned one"
    logged = {r.getMessage().split(";")[0]: r.exc_info is not None for r in caplog.records}
    assert logged["watching deployments: RuntimeError('a bug')"], "the bug is logged with its traceback"
    assert logged["Deployment ns/poisoned: skipped, it could not be recorded"]
