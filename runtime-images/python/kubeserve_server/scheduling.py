"""When and where model calls run: the in-flight limit, the request deadline, and threads.

`--container_concurrency` bounds the inference requests one server process serves at once; the
others wait for a slot in arrival order (asyncio's semaphore wakes its waiters first come, first
served). `--request_timeout` bounds a request's wait for its slot plus its model call.

Model calls run inline on the event loop (a tabular model's predict is short and holds the GIL),
except where a thread is needed: for a large body (offload.py), and whenever there is a deadline,
because a call running on the loop cannot be interrupted and the client must get its 504 on time.
A call past its deadline cannot be stopped either: it runs to its end in its thread, and its
request keeps its slot until then, so the model never has more calls at once than the limit.

And for a slow model: inline calls of a model taking 5 ms each, 64 at a time, held liveness for
seconds, as one turn of the loop ran every ready request's call before polling its sockets again.
So the scheduler times the model's inline calls (a moving average), and:
- past `PACED_CALL_SECONDS` calls still run inline, but one per turn of the loop, so the loop polls
  its sockets between any two and a probe waits for at most a call or two. Threads would free the
  loop entirely, but a thread holding the GIL makes the loop wait for it at every step: measured
  with a 6 ms model on one core, that cost 15 to 35% more CPU per request than inline calls;
- past `THREAD_CALL_SECONDS`, where a single call would hold a probe too long, calls run in one
  thread of their own (one in `_RECHECK_EVERY` still paced, to keep measuring).
The average must drop below half a threshold to leave its mode, so a model near one does not flip
to and fro.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kubeserve_server.errors import DeadlineExceeded, QueueTimeout

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Model calls slower than this on average run one per turn of the loop: the iris model takes
# 0.1 ms; at 2 ms, 50 calls run in one turn would keep a probe waiting 100 ms.
PACED_CALL_SECONDS = 0.002
# And slower than this, in a thread: a quarter of the 100 ms a probe may wait.
THREAD_CALL_SECONDS = 0.025
# The weight of the latest call in the moving average: about the last five calls count.
_SMOOTHING = 0.2
# While offloaded, one call in this many still runs inline, to measure the loop's wait afresh: a
# call timed in the thread would count its waits for the GIL too.
_RECHECK_EVERY = 20


class Pace(enum.Enum):
    """Where the model's calls run, by how long they take (see the module's docstring)."""

    INLINE = "inline on the event loop"
    PACED = "inline, one per turn of the event loop"
    THREAD = "in a thread of their own"


class Turn:
    """One request's slot (`async with`), held from its turn until its model call ends, not only
    until its answer. A plain class, not a generator: it is on every request's path."""

    def __init__(self, slots: asyncio.Semaphore | None, concurrency: int, timeout: float) -> None:
        self._waiting_for = slots
        self._slots: asyncio.Semaphore | None = None
        self._concurrency = concurrency
        self._timeout = timeout
        self._deadline: float | None = None

    async def __aenter__(self) -> Turn:
        """Wait for a slot (503, with Retry-After, if the deadline passes first), then hold it."""
        if self._timeout:
            self._deadline = asyncio.get_running_loop().time() + self._timeout
        if self._waiting_for is not None:
            try:
                async with asyncio.timeout_at(self._deadline):
                    await self._waiting_for.acquire()
            except TimeoutError:
                raise QueueTimeout(
                    f"the server is at its limit of {self._concurrency} requests at once "
                    f"(--container_concurrency) and none finished within the request timeout of "
                    f"{self._timeout:g}s (--request_timeout); retry, or add replicas"
                ) from None
            self._slots = self._waiting_for
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The request is over: if it never started a call, its slot is free now."""
        if self._slots is not None:
            self._slots.release()
            self._slots = None

    async def result(self, call: asyncio.Future[T]) -> T:
        """The call's result, or 504 once the deadline passes; the call goes on, and keeps the slot."""
        slots, self._slots = self._slots, None
        if slots is not None:
            call.add_done_callback(lambda _: slots.release())
        if call.done():  # an inline call: nothing to wait for
            return call.result()
        try:
            async with asyncio.timeout_at(self._deadline):
                return await asyncio.shield(call)
        except TimeoutError:
            raise DeadlineExceeded(
                f"the model did not answer within the request timeout of {self._timeout:g}s "
                "(--request_timeout)"
            ) from None


class Scheduler:
    def __init__(self, concurrency: int = 0, timeout: float = 0.0) -> None:
        """`concurrency` 0 is no limit, `timeout` 0 no deadline."""
        self.concurrency = concurrency
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        # Beyond one thread per slot, more threads would only queue for the same slots.
        self._threads = (
            ThreadPoolExecutor(concurrency or None, thread_name_prefix="model-call") if timeout else None
        )
        self._large = ThreadPoolExecutor(1, thread_name_prefix="large-request")
        # One thread: a model that holds the GIL gains nothing from more, and the loop competes with
        # each of them for it.
        self._slow = ThreadPoolExecutor(1, thread_name_prefix="slow-model-call")
        self.call_seconds = 0.0  # the moving average of the model's inline calls
        self.pace = Pace.INLINE
        self._paced: deque[tuple[Callable[[], object], asyncio.Future[object]]] = deque()
        self._inline_calls = 0
        self._since_inline = 0

    def turn(self) -> Turn:
        """Use as `async with scheduler.turn() as turn: ... await turn.result(call)`."""
        return Turn(self._slots, self.concurrency, self.timeout)

    def call(self, function: Callable[[], T], *, large: bool = False) -> asyncio.Future[T]:
        """Start `function()`: in a thread for a large body, under a deadline or for a slow model;
        else inline, done at once, or for a model of some milliseconds at the loop's next turn."""
        loop = asyncio.get_running_loop()
        if large:
            return loop.run_in_executor(self._large, function)
        if self._threads is not None:
            return loop.run_in_executor(self._threads, function)
        if self.pace is Pace.THREAD:
            self._since_inline += 1
            if self._since_inline < _RECHECK_EVERY:
                return loop.run_in_executor(self._slow, function)
            self._since_inline = 0
        future: asyncio.Future[T] = loop.create_future()
        if self.pace is Pace.INLINE:
            self._run(function, future)
        else:
            self._paced.append((function, future))  # type: ignore[arg-type]
            if len(self._paced) == 1:
                loop.call_soon(self._run_paced)
        return future

    def _run_paced(self) -> None:
        """The oldest paced call; the next one waits for the loop's next turn (`call_soon` from a
        callback runs after the loop has polled its sockets)."""
        function, future = self._paced[0]
        self._run(function, future)
        self._paced.popleft()
        if self._paced:
            asyncio.get_running_loop().call_soon(self._run_paced)

    def _run(self, function: Callable[[], T], future: asyncio.Future[T]) -> None:
        started = time.perf_counter()
        try:
            result = function()
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(result)
        self._observe(time.perf_counter() - started)

    def _observe(self, seconds: float) -> None:
        """Count an inline call's duration, the loop's whole wait, in the moving average."""
        self._inline_calls += 1
        if self._inline_calls == 1:  # the first call warms caches and imports: not the model's pace
            return
        self.call_seconds += _SMOOTHING * (seconds - self.call_seconds)
        average, pace = self.call_seconds, self.pace
        if average > THREAD_CALL_SECONDS or (pace is Pace.THREAD and average > THREAD_CALL_SECONDS / 2):
            pace = Pace.THREAD
        elif average > PACED_CALL_SECONDS or (pace is not Pace.INLINE and average > PACED_CALL_SECONDS / 2):
            pace = Pace.PACED
        else:
            pace = Pace.INLINE
        if pace is not self.pace:
            self.pace = pace
            logger.info(
                "model calls take %.1f ms on average: they run %s from now on", average * 1000, pace.value
            )

    def close(self) -> None:
        for executor in (self._threads, self._large, self._slow):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
