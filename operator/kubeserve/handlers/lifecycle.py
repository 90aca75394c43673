"""Start-up and shutdown: settings, configuration, the API client and the reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from kubeserve.apply.client import KubeApi, connection_info
from kubeserve.config import load_config
from kubeserve.handlers.watches import select_children
from kubeserve.observed import ClusterView
from kubeserve.reconciler import Reconciler


class NoEssence(kopf.DiffBaseStorage):
    """No diff base: kopf would deep-copy every body of every event to diff it for change handlers.

    The operator has none (only index and event handlers), so that copy, most
    of kopf's CPU per event, is skipped.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Nothing is stored, so nothing is written to the objects."""


@kopf.on.login()
def login(logger: kopf.Logger, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(logger)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    # Only watch events drive the operator: no kopf progress annotations or finalizers are written,
    # and kopf's own handler-log events are off (the reconciler posts the events that matter).
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    # Initial lists in pages: a thousand pods in one response is one big string and parse at once.
    settings.watching.chunk_size = 200
    settings.persistence.diffbase_storage = NoEssence()
    select_children(settings)
    config = load_config()
    memo.view = ClusterView()
    memo.reconciler = Reconciler(KubeApi.from_environment(logger), memo.view, config)


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    await reconciler.stop()
    await reconciler.api.close()
