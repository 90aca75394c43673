"""Large requests off the event loop, so health, readiness and metrics answer while they are served.

The loop serves probes and inference alike, and the kubelet restarts a server whose liveness probe
waits past its timeout. orjson and numpy hold the GIL for the whole of one call: parsing a 50 MiB
JSON body takes half a second or more, and a thread would stall the loop just as long. So a body of
`BIG_BODY_BYTES` or more is decoded in a child process, one at a time per server process, which
also bounds the memory that decoding's Python objects take. Prediction on such a body runs in a
thread (scheduling.py): numpy and the model libraries release the GIL for large arrays. Smaller requests stay
inline, where a hand-off would cost more than it saves.

A loop that no longer stalls would read every large body at once, where a stalled one left them in
the kernel's buffers: so at most `LARGE_REQUESTS` large requests are read and served at a time,
and the others wait, unread, for a slot.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from kubeserve_server.errors import InferenceError

# Decoding 1 MiB of JSON takes about 10 ms; shipping it to the child and back about 1 ms.
BIG_BODY_BYTES = 1 << 20
# Reading a body takes a few percent of the time decoding it does: one at a time keeps the decoder
# nearly as busy as two would, at half the memory.
LARGE_REQUESTS = 1

T = TypeVar("T")


def _ignore_sigint() -> None:
    """A terminal's Ctrl-C reaches the whole process group; the server decides when its child stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Admission:
    """One request's claim on a large-request slot, taken once its body is known to be large."""

    def __init__(self, slots: asyncio.Semaphore, threshold: int) -> None:
        self._slots = slots
        self._threshold = threshold
        self._held = False

    async def grow(self, size: int) -> None:
        """The body is (or will be) `size` bytes: wait for a slot if that makes it large."""
        if not self._held and size >= self._threshold:
            await self._slots.acquire()
            self._held = True

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._held:
            self._slots.release()
            self._held = False


class Offload:
    def __init__(self, threshold: int = BIG_BODY_BYTES) -> None:
        self.threshold = threshold
        self._slots = asyncio.Semaphore(LARGE_REQUESTS)
        # Started on the first large body: a server that never gets one keeps no extra process.
        self._decoder: ProcessPoolExecutor | None = None

    def admission(self) -> Admission:
        """Use as `async with`: the slot, if the request took one, is given back at its end."""
        return Admission(self._slots, self.threshold)

    async def decode(self, function: Callable[[bytes], T], body: bytes) -> T:
        """`function(body)`, in the child process when the body is large; `function` must pickle."""
        if len(body) < self.threshold:
            return function(body)
        if self._decoder is None:
            self._decoder = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._decoder, function, body)
        except BrokenProcessPool:
            # The child died (the kernel's OOM killer, most likely); the next large body gets a new one.
            self._decoder.shutdown(wait=False, cancel_futures=True)
            self._decoder = None
            raise InferenceError("the process decoding large bodies died; retry, or send less") from None

    def large(self, size: int) -> bool:
        """Whether a body of `size` bytes is large: its prediction then runs in a thread too."""
        return size >= self.threshold

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.shutdown(wait=False, cancel_futures=True)
