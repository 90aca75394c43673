"""When and where model calls run: the in-flight limit, the request deadline, and threads.

`--container_concurrency` bounds the inference requests one server process serves at once; the
others wait for a slot in arrival order (asyncio's semaphore wakes its waiters first come, first
served). `--request_timeout` bounds a request's wait for its slot plus its model call.

Model calls run inline on the event loop (a tabular model's predict is short and holds the GIL),
except where a thread is needed: for a large body (offload.py), and whenever there is a deadline,
because a call running on the loop cannot be interrupted and the client must get its 504 on time.
A call past its deadline cannot be stopped either: it runs to its end in its thread, and its
request keeps its slot until then, so the model never has more calls at once than the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kubeserve_server.errors import DeadlineExceeded, QueueTimeout

T = TypeVar("T")


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

    def turn(self) -> Turn:
        """Use as `async with scheduler.turn() as turn: ... await turn.result(call)`."""
        return Turn(self._slots, self.concurrency, self.timeout)

    def call(self, function: Callable[[], T], *, large: bool = False) -> asyncio.Future[T]:
        """Start `function()`: in a thread for a large body or under a deadline, else inline, done at once."""
        loop = asyncio.get_running_loop()
        executor = self._large if large else self._threads
        if executor is not None:
            return loop.run_in_executor(executor, function)
        future: asyncio.Future[T] = loop.create_future()
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)
        return future

    def close(self) -> None:
        for executor in (self._threads, self._large):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
