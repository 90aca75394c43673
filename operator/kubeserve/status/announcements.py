"""Which status changes deserve an Event: what a person sees in `kubectl describe isvc` and should act on.

Pure: the reconciler posts what this returns. A change is announced once,
when a condition's status or reason changes, never again while it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.events import EventType

PROGRESS_REASONS = frozenset({"Creating", "RolloutPending", "RolloutInProgress"})
"""Reasons of a rollout on its way: shown in conditions, but not worth a Warning event."""


@dataclass(frozen=True)
class Announcement:
    type: EventType
    reason: str
    message: str


def announcements(previous: Mapping[str, Any], status: Mapping[str, Any]) -> list[Announcement]:
    """Events for the step from `previous` to `status`.

    A new runtime choice; a condition turning False for a reason a person can
    act on (Warning); Ready turning True. A False Ready is announced only when
    no other condition already says why, as when the spec itself is refused.
    """
    found: list[Announcement] = []
    runtime = status.get("runtime")
    if runtime and runtime != previous.get("runtime"):
        found.append(
            Announcement(
                "Normal", "RuntimeSelected", f"{runtime['kind']} {runtime['name']}: {runtime['reason']}"
            )
        )
    before = {c["type"]: c for c in previous.get("conditions") or []}
    conditions = status.get("conditions") or []
    explained = {c["reason"] for c in conditions if c["type"] != "Ready" and c["status"] == "False"}
    for condition in conditions:
        old = before.get(condition["type"])
        if old and (old["status"], old.get("reason")) == (condition["status"], condition.get("reason")):
            continue
        if condition["type"] == "Ready" and condition["status"] == "True":
            found.append(Announcement("Normal", "Ready", "the InferenceService is ready"))
        elif (
            condition["status"] == "False"
            and condition["reason"] not in PROGRESS_REASONS
            and (condition["type"] != "Ready" or condition["reason"] not in explained)
        ):
            found.append(
                Announcement("Warning", condition["reason"], f"{condition['type']}: {condition['message']}")
            )
    return found
