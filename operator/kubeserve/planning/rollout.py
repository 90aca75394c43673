"""Which revision each track of a component runs, the canary's share of traffic, and each track's size.

A component has a stable track (the Deployment `<isvc>-<component>`) and, during
a canary, a canary track (`<isvc>-<component>-canary`). With
`canaryTrafficPercent: N` a changed template goes to the canary track beside the
last rolled-out revision, and gets N% only once it is Ready. Unset or 100
promotes (the stable track takes the new template, the canary track goes), 0
rolls back (the canary track goes, the stable one keeps its revision), and a
change during a canary replaces the canary, never the stable revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.planning.naming import GROUP_PREFIX

STABLE, CANARY = "stable", "canary"
LABEL_TRACK = f"{GROUP_PREFIX}/track"
"""Pod label telling the tracks apart; per-revision Services select on it."""


@dataclass(frozen=True)
class TrackState:
    """A track as observed: the revision its Deployment runs, whether it is Ready, and its pod template.

    The template lets the plan resize a stable track it must not change (during a
    canary or after a rollback) by applying the very template it runs.
    """

    revision: str
    ready: bool
    template: Mapping[str, Any]


@dataclass(frozen=True)
class Rollout:
    stable_revision: str
    stable_takes_new: bool
    """True when the stable Deployment gets the new template; False keeps the revision it runs."""
    canary_revision: str | None = None
    canary_percent: int = 0
    """The canary's effective share: 0 until it is Ready."""
    requested_percent: int | None = None

    @property
    def in_canary(self) -> bool:
        return self.canary_revision is not None

    @property
    def stable_percent(self) -> int:
        return 100 - self.canary_percent


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


def share(count: int, percent: int) -> int:
    """`percent` of `count`, rounded up and at least one: a track that may get traffic needs a pod."""
    return max(1, -(-count * percent // 100))


def track_replicas(total: int, rollout: Rollout) -> tuple[int, int]:
    """(stable, canary) replicas of a component of `total` replicas.

    The canary runs its requested share from the start (it must become Ready to
    earn it); the stable track gives up the canary's replicas only once the
    canary is Ready and takes its traffic, so capacity never dips. Behind one
    Service (no gateway) this replica ratio is the traffic split, which is
    therefore approximate: a 10% canary of a one-replica component runs one pod
    beside one stable pod and gets about half of the requests.
    """
    if not rollout.in_canary:
        return total, 0
    canary = share(total, rollout.requested_percent or 0)
    stable = max(1, total - canary) if rollout.canary_percent else total
    return stable, canary
