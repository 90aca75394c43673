"""JSON nested deeper than Python's recursion limit: decoded and encoded, pruned, and found."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kubeserve.apply.decoding import MAX_DEPTH, SPEC_DEPTH, dumps, loads, pruned, too_deep
from kubeserve.cache.observed import ClusterView
from kubeserve.planning.plan import plan_service
from tests.unit.planning_inputs import SKLEARN, inputs, service

DEEP = 5000
"""Beyond what json can decode or encode (about 1000 levels), within the API server's 10000."""


def nested_text(levels: int, inner: str = "{}") -> str:
    """`levels` objects, one in the other, around `inner`."""
    return '{"a":' * levels + inner + "}" * levels


def nested(levels: int) -> dict[str, Any]:
    """`levels` dicts, one in the other, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def depth(value: Any) -> int:
    """Containers on the longest path, `value` itself included; without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, dict | list):
            deepest = max(deepest, level)
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, level + 1) for child in children)
    return deepest


def service_text(affinity: str) -> str:
    body = {
        "type": "ADDED",
        "object": {
            "apiVersion": "serving.kubeserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "deep", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}, "affinity": "AFFINITY"}},
        },
    }
    return json.dumps(body).replace('"AFFINITY"', affinity)


def test_a_shallow_document_decodes_as_json_does() -> None:
    text = service_text('{"nodeAffinity": {"terms": [1, "x", null, 2.5]}}')
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_a_watch_event_too_deep_for_json_keeps_its_metadata_and_is_found_too_deep() -> None:
    text = service_text(nested_text(DEEP))
    with pytest.raises(RecursionError):
        json.loads(text)
    event = loads(bytearray(text.encode()))  # as the watch hands its lines over
    body = event["object"]
    assert event["type"] == "ADDED"
    assert body["metadata"] == {"name": "deep", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"}
    assert body["spec"]["predictor"]["model"] == {"modelFormat": {"name": "sklearn"}}
    assert depth(event) == MAX_DEPTH
    where = too_deep(body)
    assert where is not None and where.startswith("spec.predictor.affinity.a.a")
    assert depth(body) > SPEC_DEPTH, "a pruned object is always refused: never planned from a pruned spec"


def test_pruning_reads_strings_as_text_and_keeps_arrays_and_siblings() -> None:
    tricky = '"a \\" quote, ] and { inside"'
    text = '[{"s": ' + tricky + ', "deep": ' + nested_text(DEEP) + ', "after": [1, 2]}, "next"]'
    decoded = loads(text)
    assert decoded[0]["s"] == 'a " quote, ] and { inside'
    assert decoded[0]["after"] == [1, 2] and decoded[1] == "next"
    assert depth(decoded) == MAX_DEPTH
    arrays = loads("[" * DEEP + "]" * DEEP)
    assert depth(arrays) == MAX_DEPTH


def test_the_fallback_reads_long_strings_and_trailing_text_in_linear_time() -> None:
    """A 300 KB annotation or a long run of spaces after the last bracket: milliseconds, not the seconds
    a scan that restarts at every character would take (27 s for 100 KB)."""
    started = time.monotonic()
    decoded = loads(
        '{"annotation": "' + 'x\\"[' * 100_000 + '", "deep": ' + nested_text(DEEP) + "}" + " " * 100_000
    )
    assert decoded["annotation"] == 'x"[' * 100_000
    assert depth(decoded) == MAX_DEPTH
    assert time.monotonic() - started < 1.0


def test_encoding_a_value_too_deep_for_json_prunes_it() -> None:
    value = {"metadata": {"name": "deep"}, "spec": nested(DEEP)}
    with pytest.raises(RecursionError):
        json.dumps(value)
    decoded = json.loads(dumps(value))
    assert decoded["metadata"] == {"name": "deep"}
    assert depth(decoded) == MAX_DEPTH
    assert dumps({"a": [1, {"b": None}]}) == '{"a":[1,{"b":null}]}'


def test_pruned_copies_lists_in_order_and_leaves_the_original_alone() -> None:
    value = {"list": [1, {"x": 2}, [3]], "deep": nested(MAX_DEPTH + 5)}
    copy = pruned(value)
    assert copy["list"] == [1, {"x": 2}, [3]]
    assert depth(copy) == MAX_DEPTH and depth(value) == MAX_DEPTH + 6
    assert pruned("scalar") == "scalar"


def test_too_deep_holds_at_the_limit_and_names_the_path_past_it() -> None:
    at_limit = {"spec": {"list": [nested(SPEC_DEPTH - 3)]}}
    assert depth(at_limit) == SPEC_DEPTH
    assert too_deep(at_limit) is None
    past = {"spec": {"list": [nested(SPEC_DEPTH - 2)]}}
    assert too_deep(past) == "spec.list[0].a.a.a.a.a…"
    assert too_deep(nested(10_000)) is not None, "any depth is safe to ask about"
    assert too_deep("text") is None


def test_the_view_keeps_and_gives_back_an_object_too_deep_to_encode() -> None:
    body = json.loads(service_text("{}"))["object"]
    body["spec"]["predictor"]["affinity"] = nested(DEEP)
    view = ClusterView()
    assert view.record("InferenceService", "ADDED", body)
    kept = view.get("InferenceService", "ns", "deep")
    assert kept is not None and kept["metadata"]["name"] == "deep"
    assert too_deep(kept) is not None
    assert view.keys("InferenceService") == [("ns", "deep")]


def test_a_spec_at_the_limit_is_planned_and_its_children_stay_within_what_decodes_whole() -> None:
    affinity = nested(SPEC_DEPTH - 3)  # the body, spec, predictor, then the affinity at level 4
    spec = {"predictor": {**SKLEARN["predictor"], "affinity": affinity}}
    assert depth({"spec": spec}) == SPEC_DEPTH and too_deep({"spec": spec}) is None
    plan = plan_service(service(spec), inputs())
    deployment = next(o for o in plan.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["affinity"] == affinity
    assert depth({"items": [deployment]}) <= MAX_DEPTH, "never pruned, even in a list page"
