"""Conditions in the Kubernetes convention, keeping lastTransitionTime while the status holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Verdict:
    """A condition before it is dated: what holds and why."""

    type: str
    status: Status
    reason: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "True"


def dated(
    verdicts: Iterable[Verdict], previous: Iterable[Mapping[str, Any]], now: str, generation: int | None
) -> list[dict[str, Any]]:
    """Conditions for `verdicts`; a condition whose status did not change keeps its transition time."""
    before = {c.get("type"): c for c in previous}
    conditions = []
    for verdict in verdicts:
        old = before.get(verdict.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == verdict.status else None
        condition: dict[str, Any] = {
            "type": verdict.type,
            "status": verdict.status,
            "reason": verdict.reason,
            "message": verdict.message,
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        conditions.append(condition)
    return conditions


def all_ready(kind: str, parts: list[Verdict]) -> Verdict:
    """The summary condition: True when every part is; otherwise the first part that is not."""
    failing = next((p for p in parts if not p.ok), None)
    if failing is None:
        return Verdict(kind, "True", "Ready", "")
    return Verdict(kind, "False" if failing.status == "False" else "Unknown", failing.reason, failing.message)


def refused(
    previous: Mapping[str, Any], generation: int | None, reason: str, message: str, now: str
) -> dict[str, Any]:
    """The status of a service the operator will not plan (a spec it cannot read, or its own failure).

    Only a False Ready condition says why: the component conditions of a plan
    that no longer applies would mislead. What the status says of revisions
    and traffic stays as last written, since the children stay as they were.
    """
    conditions = dated(
        [Verdict("Ready", "False", reason, message)], previous.get("conditions") or [], now, generation
    )
    return {**previous, "observedGeneration": generation, "conditions": conditions}


def child_refusal(status: int, message: str) -> tuple[str, str]:
    """The reason and message of a service whose child the API server refused, in its own words: the
    spec's content (`ChildRejected`: a name too long for a child, a bad label or env name, fields the
    child's schema refuses) or the operator's permissions (`Forbidden`)."""
    reason = "Forbidden" if status == 403 else "ChildRejected"
    return reason, f"the API server refused what this service asks for ({status}): {message}"
