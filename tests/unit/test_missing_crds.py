"""`kubeserve run` on a cluster without Kubeserve's CRDs says so once, with the command that fixes it,
and /readyz says the same until they are applied; then the operator goes on by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubeserve.apply.client import ApiError
from kubeserve.apply.resources import DEPLOYMENT, HTTP_ROUTE, INFERENCE_SERVICE, Resource
from kubeserve.cache import watches
from kubeserve.cache.observed import ClusterView
from kubeserve.cache.watches import Follower, Scope, Watched, _service
from kubeserve.config import OperatorConfig
from kubeserve.missing_crds import MissingCrds
from kubeserve.monitoring import build_app
from kubeserve.reconciler import Reconciler

APPLY = "kubectl apply --server-side -f crds/"


class NotYetServed:
    """An API server without the CRD: every list is a 404 until `install()`."""

    def __init__(self) -> None:
        self.lists = 0
        self.installed = False
        self.asked_again = asyncio.Event()
        """Set after a few lists: the follower went on asking."""

    def install(self) -> None:
        self.installed = True

    async def list_page(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self.lists += 1
        if self.lists >= 5:
            self.asked_again.set()
        if not self.installed:
            raise ApiError(404, "the server could not find the requested resource")
        return {"metadata": {"resourceVersion": "1"}, "items": []}

    async def watch(
        self, resource: Resource, namespace: str | None, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()  # a quiet watch
        yield {}


def test_missing_crds_are_said_once_and_by_readyz_until_applied(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(watches, "MISSING_CRD_SECONDS", 0.01)
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[list[tuple[int, str]], MissingCrds]:
        api = NotYetServed()
        reconciler = Reconciler(api, ClusterView(), OperatorConfig())  # type: ignore[arg-type]
        missing = MissingCrds()
        follower = Follower(
            api,  # type: ignore[arg-type]
            reconciler,
            Watched(INFERENCE_SERVICE, _service),
            None,
            Scope(),
            asyncio.Lock(),
            missing,
        )
        answers = []
        async with TestClient(TestServer(build_app(reconciler, list, missing))) as client:
            task = asyncio.create_task(follower.run())
            await asyncio.wait_for(api.asked_again.wait(), 5)  # asked again and again, said once
            response = await client.get("/readyz")
            answers.append((response.status, await response.text()))
            api.install()
            await asyncio.wait_for(follower.listed.wait(), 5)
            reconciler.synced.set()  # as follow_all does once every kind is listed
            response = await client.get("/readyz")
            answers.append((response.status, await response.text()))
            task.cancel()
        return answers, missing

    answers, missing = asyncio.run(scenario())
    (status, text), ready = answers
    assert status == 503 and APPLY in text and "inferenceservices.serving.kubeserve.io" in text
    assert ready == (200, "ok\n")
    assert missing.names == set()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and APPLY in errors[0], errors
    assert any("CRDs are served now" in r.getMessage() for r in caplog.records)


def test_only_kubeserves_own_kinds_count_as_missing_crds() -> None:
    missing = MissingCrds()
    assert missing.owns(INFERENCE_SERVICE)
    assert not missing.owns(DEPLOYMENT)
    assert not missing.owns(HTTP_ROUTE), "a route CRD is optional: its absence is no error"
