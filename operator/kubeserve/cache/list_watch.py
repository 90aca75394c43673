"""One list-and-watch loop for everything the operator follows: the view's kinds and its ConfigMap.

A follower lists its resource in pages, then watches from the list's
resourceVersion; when the server no longer has that version (410 Gone, as an
ERROR event or as a refused watch) it lists again, and the new list says which
objects went away meanwhile. Whatever fails, the loop backs off (longer after
each failure in a row) and goes on: a dead loop would leave its kind unwatched
with nothing but a failed liveness probe to show for it, and a watch the server
ends at once never becomes a tight loop of reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubeserve.apply.client import ApiError, KubeApi, TransportError
from kubeserve.apply.resources import Resource

PAGE_SIZE = 100
"""Objects per list page: one page of pods, parsed, is a few MiB until it is slimmed into the view."""
WATCH_SECONDS = 300
MIN_WATCH_SECONDS = 1.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
logger = logging.getLogger(__name__)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class ListWatch:
    """List, then watch, one resource in one namespace (or all); subclasses say what an event means."""

    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        namespace: str | None,
        selector: Mapping[str, str] | None = None,
        listing: asyncio.Lock | None = None,
    ) -> None:
        self.api = api
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.selector = dict(selector or {})
        """Label or field selector: what the server sends at all."""
        self.listing = listing or asyncio.Lock()
        """May be shared by many followers: one page in memory at a time, however many list at once."""
        self.listed = asyncio.Event()
        """Set once the first list is in."""

    async def received(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One object from a list (`event_type` None) or a watch event (ADDED, MODIFIED, DELETED)."""
        raise NotImplementedError

    def relisted(self, seen: set[tuple[str, str]]) -> None:
        """After a list: `seen` holds the (namespace, name) of every object it had."""

    async def refused(self, error: ApiError) -> bool:
        """A list or watch the server refused (not 410): True if handled here, else it is retried."""
        return False

    async def run(self) -> None:
        """Follow until cancelled."""
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list()
                    self.listed.set()
                started = time.monotonic()
                version = await self._watch(version)
                failures = 0
                if time.monotonic() - started < MIN_WATCH_SECONDS:
                    await asyncio.sleep(MIN_WATCH_SECONDS)
            except Gone:
                logger.info("%s: watch expired, listing again", self.resource.plural)
                version = None
            except ApiError as error:
                version = None  # a watch may also be refused outright for a version too old (410)
                if error.status != 410 and not await self.refused(error):
                    failures = await self._failed(error, failures)
            except (TransportError, ValueError) as error:
                failures = await self._failed(error, failures)
            except Exception as error:
                version = None
                failures = await self._failed(error, failures, unexpected=True)

    async def _failed(self, error: Exception, failures: int, unexpected: bool = False) -> int:
        """Wait before trying again, longer after each failure in a row; returns the new count.

        An unexpected error is a bug: logged at error level, with its traceback.
        """
        delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
        logger.log(
            logging.ERROR if unexpected else logging.WARNING,
            "watching %s: %s; again in %.1fs",
            self.resource.plural,
            repr(error) if unexpected else error,
            delay,
            exc_info=error if unexpected else None,
        )
        await asyncio.sleep(delay)
        return failures + 1

    async def _list(self) -> str:
        """List in pages, each object to `received`, then `relisted`. Returns the list's version."""
        seen: set[tuple[str, str]] = set()
        params = {**self.selector, "limit": str(PAGE_SIZE)}
        version = ""
        while True:
            async with self.listing:
                try:
                    page = await self.api.list_page(self.resource, self.namespace, params)
                except ApiError as error:
                    if error.status == 410 and "continue" in params:  # the snapshot expired: start over
                        params = {**self.selector, "limit": str(PAGE_SIZE)}
                        seen.clear()
                        version = ""
                        continue
                    raise
                version = version or page["metadata"]["resourceVersion"]
                for item in page["items"]:
                    metadata = item["metadata"]
                    seen.add((metadata.get("namespace", ""), metadata["name"]))
                    await self.received(
                        None, {"apiVersion": page.get("apiVersion"), "kind": self.resource.kind, **item}
                    )
                following = page["metadata"].get("continue")
                del page
            if not following:
                break
            params = {**params, "continue": following}
        self.relisted(seen)
        return version

    async def _watch(self, version: str) -> str:
        """Follow the watch until the server ends it; returns the last resourceVersion seen."""
        params = {**self.selector, "resourceVersion": version, "timeoutSeconds": str(WATCH_SECONDS)}
        async for event in self.api.watch(self.resource, self.namespace, params):
            body = event["object"]
            if event["type"] == "ERROR":
                if body.get("code") == 410:
                    raise Gone
                raise ApiError(body.get("code", 500), body.get("message", str(body)))
            version = body["metadata"].get("resourceVersion") or version
            if event["type"] != "BOOKMARK":
                await self.received(event["type"], body)
        return version
