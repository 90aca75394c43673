"""Lease timing, driven by a fake clock over an in-memory Lease store with the API server's optimistic
concurrency (a replace with a stale resourceVersion is a 409). The real API server's side is in
tests/cluster/test_leader_election.py; here each moment is chosen, so the edges are exact."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kubeserve.apply.client import ApiError
from kubeserve.apply.resources import Resource
from kubeserve.leadership import Leadership, LeaseTiming


class Leases:
    """Leases as the API server keeps them: create once, replace only at the current version."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.version = 0

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.stored.get(name)
        return copy.deepcopy(found) if found else None

    async def create(self, resource: Resource, namespace: str, body: dict[str, Any], guarded: bool) -> None:
        if body["metadata"]["name"] in self.stored:
            raise ApiError(409, "already exists")
        self._store(body)

    async def replace(
        self, resource: Resource, namespace: str, name: str, body: dict[str, Any], guarded: bool
    ) -> None:
        if body["metadata"].get("resourceVersion") != self.stored[name]["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        self._store(body)

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.stored[stored["metadata"]["name"]] = stored


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _replica(leases: Leases, identity: str, clock: Clock) -> Leadership:
    return Leadership(leases, "ops", "kubeserve", identity, LeaseTiming(), clock)  # type: ignore[arg-type]


async def _renew(replica: Leadership, at: float, clock: Clock) -> bool:
    """One turn of `run`'s loop at time `at`."""
    clock.now = at
    held = await replica._try(at)
    if held:
        replica._valid_until = at + replica.timing.deadline
        replica.leading.set()
    else:
        replica.may_write()
    return held


def test_a_holder_that_cannot_renew_stops_writing_at_its_deadline_before_anyone_may_take_over() -> None:
    leases, clock = Leases(), Clock()
    a = _replica(leases, "a", clock)
    assert asyncio.run(_renew(a, 0.0, clock))
    clock.now = 9.9
    assert a.may_write()
    clock.now = 10.0
    assert not a.may_write(), "deadline: 10 s after the send time of the last renewal"
    assert not a.leading.is_set()


def test_a_candidate_times_expiry_by_its_own_clock_from_when_it_last_saw_the_record_change() -> None:
    leases = Leases()
    clock_a, clock_b = Clock(), Clock()
    a, b = _replica(leases, "a", clock_a), _replica(leases, "b", clock_b)

    async def scenario() -> list[bool]:
        turns = [await _renew(a, 0.0, clock_a)]
        clock_b.now = 1000.0  # clocks need not agree: b's starts elsewhere
        turns.append(await _renew(b, 1000.0, clock_b))  # sees a's record for the first time
        turns.append(await _renew(a, 2.0, clock_a))  # a renews: the record changes
        turns.append(await _renew(b, 1014.0, clock_b))  # sees the change at its 1014
        turns.append(await _renew(b, 1028.9, clock_b))  # 14.9 s since the change: not expired
        turns.append(await _renew(b, 1029.1, clock_b))  # 15.1 s: a is gone, b takes it
        turns.append(await _renew(a, 20.0, clock_a))  # a comes back: b holds it now
        return turns

    assert asyncio.run(scenario()) == [True, False, True, False, False, True, False]
    assert leases.stored["kubeserve"]["spec"]["holderIdentity"] == "b"
    assert leases.stored["kubeserve"]["spec"]["leaseTransitions"] == 1
    assert b.leading.is_set() and not a.leading.is_set()
    clock_a.now = 20.0
    assert not a.may_write()


def test_two_candidates_for_a_free_lease_one_wins() -> None:
    leases, clock = Leases(), Clock()
    a, b = _replica(leases, "a", clock), _replica(leases, "b", clock)

    async def scenario() -> tuple[bool, bool]:
        held = await asyncio.gather(a._try(0.0), b._try(0.0))
        return held[0], held[1]

    assert sorted(asyncio.run(scenario())) == [False, True]


def test_lease_timing_must_leave_the_holder_time_to_stop_before_a_takeover() -> None:
    with pytest.raises(ValueError, match="retry < deadline < duration"):
        LeaseTiming(duration=10.0, deadline=10.0, retry=2.0)
