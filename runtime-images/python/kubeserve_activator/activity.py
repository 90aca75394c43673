"""The requests the activator holds or forwards, per service: one of the idle scale-down's signals.

Warm traffic bypasses the activator, so the pods' own counters are the main signal; but a request held
here for a pod that is not Ready yet shows in no pod's counter, and must keep its service up all the same.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from kubeserve_activator.interfaces import Target


class RequestActivity:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: Counter[Target] = Counter()
        self._last: dict[Target, float] = {}

    @contextlib.contextmanager
    def serving(self, target: Target) -> Iterator[None]:
        """Around one request, from its arrival to the end of its response (or its 503)."""
        self._open[target] += 1
        self._last[target] = self._clock()
        try:
            yield
        finally:
            self._open[target] -= 1
            if not self._open[target]:
                del self._open[target]
            self._last[target] = self._clock()

    def used_since(self, targets: Iterable[Target], moment: float) -> bool:
        """Whether any of the targets has a request open now, or had one after `moment`."""
        return any(self._open[target] or self._last.get(target, float("-inf")) > moment for target in targets)
