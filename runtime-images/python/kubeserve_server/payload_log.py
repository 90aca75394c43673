"""Request/response payload logging to a CloudEvents sink, off the request path.

`--log_payload_mode` picks the events: both sides of each exchange (`all`), or only the `request`
or the `response`, as KServe's logger modes do. Requests only enqueue; one background task posts
the events (binary content mode). When the sink is slow the bounded queue fills and further
payloads are dropped and counted (`kubeserve_payload_events_dropped_total`), never waited for: a
logging sink must not be able to slow inference down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

REQUEST_TYPE = "io.kubeserve.inference.request"
RESPONSE_TYPE = "io.kubeserve.inference.response"


@dataclass(frozen=True, slots=True)
class _Event:
    type: str
    id: str
    body: bytes
    content_type: bytes


class PayloadLogger:
    def __init__(
        self, sink_url: str, model_name: str, dropped: Counter, queue_size: int = 1024, mode: str = "all"
    ) -> None:
        self.sink_url = sink_url
        self.model_name = model_name
        self._types = {
            "all": (REQUEST_TYPE, RESPONSE_TYPE),
            "request": (REQUEST_TYPE,),
            "response": (RESPONSE_TYPE,),
        }[mode]
        self._dropped = dropped
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def submit(
        self, request_id: str | None, request: tuple[bytes, bytes], response: tuple[bytes, bytes]
    ) -> None:
        """Queue the mode's sides of one exchange, each a (body, content type), as events sharing one id."""
        event_id = request_id or str(uuid.uuid4())
        sides = {REQUEST_TYPE: request, RESPONSE_TYPE: response}
        for event in (_Event(kind, event_id, *sides[kind]) for kind in self._types):
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                self._dropped.inc()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, drain_seconds: float = 2.0) -> None:
        """Give queued events a moment to go out, then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        except TimeoutError:
            logger.warning("payload log: %d events not sent at shutdown", self._queue.qsize())
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # Imported here: httpx costs a tenth of a second or more of every server's start (a cold start
        # waits for it), and most servers log no payloads.
        import httpx

        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                event = await self._queue.get()
                try:
                    await self._post(client, event)
                finally:
                    self._queue.task_done()

    async def _post(self, client: httpx.AsyncClient, event: _Event) -> None:
        import httpx  # already loaded by `_run`

        headers = {
            "ce-specversion": "1.0",
            "ce-id": event.id,
            "ce-type": event.type,
            "ce-source": f"kubeserve/{self.model_name}",
            "ce-time": datetime.now(UTC).isoformat(),
            "ce-modelname": self.model_name,
            "content-type": event.content_type.decode(),
        }
        try:
            response = await client.post(self.sink_url, content=event.body, headers=headers)
        except httpx.HTTPError as error:
            self._outcome(f"unreachable: {error}")
            return
        self._outcome(f"answered {response.status_code}" if response.status_code >= 300 else None)

    def _outcome(self, failure: str | None) -> None:
        """Log when the sink starts failing and when it recovers, not once per event."""
        if failure is not None and not self._failing:
            logger.warning(
                "payload log: sink %s %s; events are lost until it recovers", self.sink_url, failure
            )
        elif failure is None and self._failing:
            logger.info("payload log: sink %s recovered", self.sink_url)
        self._failing = failure is not None
