"""Which revision each track of a component runs, and the canary's share of traffic.

A component has a stable track (the Deployment `<isvc>-<component>`) and, during
a canary, a canary track (`<isvc>-<component>-canary`). With
`canaryTrafficPercent: N` a changed template goes to the canary track beside the
last rolled-out revision, and gets N% only once it is Ready. Unset or 100
promotes (the stable track takes the new template, the canary track goes), 0
rolls back (the canary track goes, the stable one is untouched), and a change
during a canary replaces the canary, never the stable revision.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackState:
    """A track as observed: the revision its Deployment runs and whether that revision is Ready."""

    revision: str
    ready: bool


@dataclass(frozen=True)
class Rollout:
    stable_revision: str
    stable_takes_new: bool
    """True when the stable Deployment is (re)written with the new template; False keeps it as it is."""
    canary_revision: str | None = None
    canary_percent: int = 0
    """The canary's effective share: 0 until it is Ready."""
    requested_percent: int | None = None

    @property
    def in_canary(self) -> bool:
        return self.canary_revision is not None


def plan_rollout(
    new_revision: str, percent: int | None, stable: TrackState | None, canary: TrackState | None
) -> Rollout:
    if stable is None or stable.revision == new_revision or percent is None or percent >= 100:
        return Rollout(stable_revision=new_revision, stable_takes_new=True, requested_percent=percent)
    if percent <= 0:
        return Rollout(stable_revision=stable.revision, stable_takes_new=False, requested_percent=0)
    canary_ready = canary is not None and canary.revision == new_revision and canary.ready
    return Rollout(
        stable_revision=stable.revision,
        stable_takes_new=False,
        canary_revision=new_revision,
        canary_percent=percent if canary_ready else 0,
        requested_percent=percent,
    )


def split_replicas(total: int, canary_percent: int) -> tuple[int, int]:
    """(stable, canary) replicas in the traffic ratio, for the Service-only backend.

    Approximate by nature: one Service spreads requests evenly over ready pods,
    so the split follows the replica ratio; the canary always has at least one
    replica (it must become Ready to earn its share) and so does the stable.
    """
    canary = max(1, round(total * canary_percent / 100))
    return max(1, total - canary), canary
