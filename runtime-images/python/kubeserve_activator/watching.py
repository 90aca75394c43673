"""List-and-watch of one kind of object into a `Collection`: the list replaces its contents, each event
updates them. A watch the server expires (410) lists again; errors back off, never in a tight loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NoReturn, Protocol

from kubeserve_activator.kube_api import ApiError, KubeApi

log = logging.getLogger(__name__)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
MIN_WATCH_SECONDS = 1.0  # a watch shorter than this is followed by a pause before the next one


class Collection(Protocol):
    def reset(self, objects: list[dict[str, Any]]) -> None:
        """Replace everything with the objects of a fresh list."""

    def update(self, event: str, obj: dict[str, Any]) -> None:
        """ADDED, MODIFIED or DELETED."""


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Follower:
    """Follows `path` (with `params`, such as a label selector) into `collection` until cancelled."""

    def __init__(self, api: KubeApi, path: str, params: dict[str, str], collection: Collection) -> None:
        self._api = api
        self._path = path
        self._params = params
        self._collection = collection
        self.listed = asyncio.Event()
        """Set once the first list is in the collection."""
        self.lists = 0
        self._relist = asyncio.Event()

    def relist(self) -> None:
        """List again soon (the collection now wants objects it filtered out before)."""
        self._relist.set()

    async def run(self) -> NoReturn:
        delay = BACKOFF_FIRST
        while True:
            attempt = time.monotonic()
            try:
                await self._list_then_watch()
            except Expired:
                log.info("watch of %s expired; listing again", self._path)
                await asyncio.sleep(BACKOFF_FIRST)
            except ApiError as error:
                if time.monotonic() - attempt > BACKOFF_MAX:  # it had worked for a while: a new episode
                    delay = BACKOFF_FIRST
                log.warning("following %s: %s; again in %.1f s", self._path, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST

    async def _list_then_watch(self) -> None:
        """Returns when a relist is asked for; raises `Expired` or `ApiError`."""
        self._relist.clear()
        listed = await self._api.get(self._path, self._params)
        self._collection.reset(listed.get("items") or [])
        self.lists += 1
        self.listed.set()
        version: str = listed["metadata"]["resourceVersion"]
        while not self._relist.is_set():
            started = time.monotonic()
            watching = asyncio.ensure_future(self._watch(version))
            relist = asyncio.ensure_future(self._relist.wait())
            try:
                await asyncio.wait((watching, relist), return_when=asyncio.FIRST_COMPLETED)
            finally:
                watching.cancel()
                relist.cancel()
            if not watching.cancelled() and watching.done():
                version = watching.result()  # raises Expired or ApiError
            if time.monotonic() - started < MIN_WATCH_SECONDS and not self._relist.is_set():
                await asyncio.sleep(MIN_WATCH_SECONDS)

    async def _watch(self, version: str) -> str:
        """One watch request from `version`; returns the last version seen when the server ends it."""
        events = self._api.watch(self._path, self._params | {"resourceVersion": version})
        try:
            async for event in events:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired(obj.get("message", ""))
                    raise ApiError(int(obj.get("code") or 0), f"watch {self._path}: {obj.get('message')}")
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._collection.update(kind, obj)
        except ApiError as error:
            if error.status == 410:  # refused before any event: the version is already too old
                raise Expired(str(error)) from error
            raise
        return version
