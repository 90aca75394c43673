"""How long a test watches for writes that must not come: two periods of the operator's longest timer.

A window catches a periodic writer only if that writer's period fits in it, and twice over leaves room
for the phase and a late tick. The operator's periodic timers are the lease renewal (a try every 2 s,
a 15 s lease, by default); there is no periodic resync (watches resume from their resourceVersion every
300 s, which sends no event for an unchanged object, and an unserved route CRD is waited for through
kopf's CRD watch, not polled).
A writer woken only by that 300 s watch renewal, or by the reconcile backoff's 60 s ceiling after an
error, would escape these windows.
"""

from __future__ import annotations

from kubeserve.leadership import LeaseTiming

TIMERS = {
    "lease renewal try": LeaseTiming().retry,
    "lease duration": LeaseTiming().duration,
}
"""The operator's own periodic timers, in seconds, at their defaults."""
LONGEST_TIMER = max(TIMERS.values())
QUIET_WINDOW = 2 * LONGEST_TIMER
"""Seconds a test watches for writes that must not come (30 s today)."""
