"""Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas never reconcile at once.

kopf has no leader election of its own (its peering pauses every peer of equal
priority), so Kubeserve keeps a Lease the way client-go's leader election does:

- A candidate takes the Lease when it is free, or when its holder has not
  renewed it for `duration` seconds, timed by this replica's own clock from
  when it last *saw* the record change, so clocks need not agree.
- The holder renews every `retry` seconds. It may write only until `deadline`
  seconds after the send time of its last successful renewal; `deadline` is
  shorter than `duration`, so a holder that cannot renew (partitioned, paused,
  overloaded) stops writing before any other replica may take over.

Every replica keeps watching and indexing while it waits, so a takeover starts
from a full view, not a cold list.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi, TransportError
from kubeserve.apply.resources import LEASE

logger = logging.getLogger(__name__)


def _micro_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: 15 s lease, 10 s to renew, a try every 2 s."""

    duration: float = 15.0
    deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.deadline < self.duration:
            raise ValueError("lease timing must satisfy 0 < retry < deadline < duration")


class Leadership:
    """Holds, or waits for, one Lease; `may_write()` says whether this replica may act right now."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming = LeaseTiming(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self._valid_until = 0.0
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0
        self.leading = asyncio.Event()
        """Set while this replica holds the Lease; the reconciler waits on it."""

    def may_write(self) -> bool:
        """Asked before every write; past the renewal deadline, leadership ends here and now."""
        if self._clock() < self._valid_until:
            return True
        if self.leading.is_set():
            self._step_down("the lease was not renewed within its deadline")
        return False

    async def run(self, on_leading: Callable[[], None]) -> None:
        """Try, hold and renew the Lease until cancelled; `on_leading` runs at each takeover."""
        try:
            while True:
                sent = self._clock()
                held = await self._try(sent)
                if held:
                    self._valid_until = sent + self.timing.deadline
                    if not self.leading.is_set():
                        logger.info("took the lease %s/%s as %s", self.namespace, self.name, self.identity)
                        self.leading.set()
                        on_leading()
                else:
                    self.may_write()  # steps down once the deadline has passed
                await asyncio.sleep(self.timing.retry)
        finally:
            if self.leading.is_set():
                self._step_down("stopping")
                await self._release()

    def _step_down(self, why: str) -> None:
        logger.warning("lost the lease %s/%s: %s", self.namespace, self.name, why)
        self._valid_until = 0.0
        self.leading.clear()

    async def _try(self, sent: float) -> bool:
        """One attempt to take or renew the Lease; False when another replica holds it or on errors."""
        try:
            lease = await self.api.get(LEASE, self.namespace, self.name)
            now = datetime.datetime.now(datetime.UTC)
            if lease is None:
                await self.api.create(LEASE, self.namespace, self._record(None, now), guarded=False)
                return True
            spec = lease.get("spec") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            holder = spec.get("holderIdentity")
            if record != self._seen:
                if holder != self.identity and (self._seen or (None,))[0] != holder:
                    logger.info("the lease %s/%s is held by %s", self.namespace, self.name, holder)
                self._seen, self._seen_at = record, sent
            expired = sent > self._seen_at + float(spec.get("leaseDurationSeconds") or self.timing.duration)
            if holder and holder != self.identity and not expired:
                if self.leading.is_set():
                    self._step_down(f"{holder} holds it now")
                return False
            updated = self._record(lease, now)
            await self.api.replace(LEASE, self.namespace, self.name, updated, guarded=False)
            return True
        except (ApiError, TransportError) as error:
            if not (isinstance(error, ApiError) and error.status == 409):
                logger.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False

    def _record(self, lease: dict[str, Any] | None, now: datetime.datetime) -> dict[str, Any]:
        """The Lease as this replica holds it; a takeover counts a transition and sets acquireTime."""
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = _micro_time(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
        spec |= {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.timing.duration),
            "renewTime": _micro_time(now),
        }
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": LEASE.api_version, "kind": LEASE.kind, "metadata": metadata, "spec": spec}

    async def _release(self) -> None:
        """Hand the Lease over at once on a clean stop, rather than making the next holder wait it out."""
        try:
            lease = await self.api.get(LEASE, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                released = self._record(lease, datetime.datetime.now(datetime.UTC))
                released["spec"] |= {"holderIdentity": None, "leaseDurationSeconds": 1}
                await self.api.replace(LEASE, self.namespace, self.name, released, guarded=False)
                logger.info("released the lease %s/%s", self.namespace, self.name)
        except (ApiError, TransportError) as error:
            logger.warning("could not release the lease %s/%s: %s", self.namespace, self.name, error)
