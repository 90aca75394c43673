"""Start-up and shutdown: settings, configuration, the API client, the reconciler and its loops."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
from typing import Any

import kopf

from kubeserve.apply.client import KubeApi, connection_info
from kubeserve.cache.observed import ClusterView
from kubeserve.cache.watches import ActivatorSlices, follow_all
from kubeserve.config import OperatorConfig, load_config
from kubeserve.leadership import Leadership
from kubeserve.live_config import ConfigMapSource
from kubeserve.missing_crds import MissingCrds
from kubeserve.monitoring import serve
from kubeserve.options import RunOptions
from kubeserve.reconciler import Reconciler

TLS_READ_BYTES = 64 * 1024
"""What one TLS connection reads from its socket at a time (asyncio's default is 256 KiB)."""


def small_tls_reads() -> None:
    """Give every TLS connection opened from now on a 64 KiB read buffer instead of asyncio's 256 KiB.

    asyncio allocates that buffer per connection, zeroed, so it is resident
    from the start: the operator's ~30 connections to the API server (the
    writes' pool, one watch per kind, kopf's) held 7.75 MiB of them
    (tracemalloc, 1000 services), a tenth of the operator at rest. Watch
    events and list pages arrive in TLS records of at most 16 KiB anyway;
    a 1 MB list page is read in 16 pieces instead of 4.
    """
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BYTES


class NoEssence(kopf.DiffBaseStorage):
    """No diff base: kopf would deep-copy every body of every event to diff it for change handlers.

    The operator has none (only event handlers, on CRDs), so that copy, most
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
    settings.persistence.diffbase_storage = NoEssence()
    small_tls_reads()  # before the first connection: the API client's and kopf's (opened after start-up)
    options: RunOptions = memo.options
    credentials = connection_info(logger)
    api = KubeApi.from_connection(credentials)
    loops: list[asyncio.Task[None]] = []
    memo.loops = loops
    source = None
    if options.config_map and options.operator_namespace:
        source = ConfigMapSource(api, options.operator_namespace, options.config_map)
        config = await source.initial()
    else:
        config = load_config(options.config_file)
    memo.view = ClusterView()
    reconciler = memo.reconciler = Reconciler(api, memo.view, config)
    # Watches on a client of their own: their long-lived connections stay out of the writes' pool.
    watch_api = KubeApi.from_connection(credentials)
    missing = MissingCrds()
    activator = ActivatorSlices(watch_api, reconciler, missing)

    def follow_activator(config: OperatorConfig) -> None:
        """Where the activator is, as the configuration says (followed only while scale to zero is on)."""
        where = config.scale_to_zero.activator_service(options.operator_namespace)
        if config.scale_to_zero.enabled and where is None:
            logger.error(
                "scaleToZero.enabled, but where the activator runs is unknown: set "
                "scaleToZero.activator.namespace or --operator-namespace; meanwhile idle services have no "
                "activator to route to"
            )
        activator.follow(where)

    def reconfigure(config: OperatorConfig) -> None:
        follow_activator(config)
        reconciler.reconfigure(config)

    follow_activator(config)
    watches = follow_all(watch_api, reconciler, missing, options.namespaces, activator)
    loops.append(asyncio.create_task(watches, name="watches"))
    if source is not None:
        loops.append(asyncio.create_task(source.follow(reconfigure), name="configuration watch"))
    if options.leader_elect and options.operator_namespace:
        leadership = Leadership(
            api, options.operator_namespace, options.lease_name, options.identity(), options.lease_timing
        )
        api.may_write = leadership.may_write
        reconciler.active = leadership.leading
        loops.append(asyncio.create_task(leadership.run(reconciler.enqueue_all), name="leader election"))
    memo.http = None
    if options.http_address:
        memo.http = await serve(options.http_address, reconciler, lambda: loops, missing)


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    for loop in memo.loops:
        loop.cancel()
    # The lease is released (handed over at once) by its loop's own cancellation.
    await asyncio.gather(*memo.loops, return_exceptions=True)
    await reconciler.stop()
    if memo.http is not None:
        await memo.http.cleanup()
    await reconciler.api.close()
