"""JSON in and out with no recursion limit that one object can reach.

Python's json module recurses once per nesting level and gives up near
Python's recursion limit (about 1000 levels, fewer the deeper the caller's
stack), while the API server stores objects nested up to about 10000 levels
(a free-form field such as an InferenceService's `affinity`). One such object
in a watch or a list page would stop the watch, and with it all reconciling.

So both directions take the fast C path first (measuring every object's
depth in Python would cost about four times its decoding) and, only when
that raises RecursionError, fall back to an iterative pass that keeps the first
`MAX_DEPTH` levels and replaces what lies deeper with null. Metadata (names,
labels, versions) is shallow and always survives, so the object is still
indexed and reconciled; the reconciler refuses any InferenceService nested
deeper than its own, lower limit (`SPEC_DEPTH`), and a pruned object is
always that deep, so nothing is ever planned from a pruned spec.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 100
"""Levels kept by the fallback: far beyond any real object, well within the recursion limit."""
SPEC_DEPTH = 64
"""Levels of a spec the operator plans from; deeper is refused. Real specs stay under 20.

Below `MAX_DEPTH` with room for a watch event's or a list page's own levels,
so that a pruned object is always refused, and so that the children planned
from an accepted spec (a few levels deeper) are never pruned themselves.
"""

SHOWN = 8
"""Levels of a too-deep path that a message shows."""
_BRACKET = re.compile(r'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+([\[\]{}])')
"""The next bracket (group 1), past any text and strings (brackets in a string are text): one match
per bracket, the rest skipped by the regular expression engine. Possessive, so that text after the
last bracket is given up on at once instead of by backtracking through every way to split it."""


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads`, except that containers nested deeper than `MAX_DEPTH` become null when needed."""
    try:
        return json.loads(text)
    except RecursionError:
        return json.loads(_pruned_text(text.decode() if isinstance(text, bytes | bytearray) else text))


def dumps(value: Any) -> str:
    """Compact `json.dumps`, except that containers nested deeper than `MAX_DEPTH` become null when needed."""
    try:
        return json.dumps(value, separators=(",", ":"))
    except RecursionError:
        return json.dumps(pruned(value), separators=(",", ":"))


def _pruned_text(text: str) -> str:
    """The JSON text with every container that starts below `MAX_DEPTH` levels replaced by null."""
    kept: list[str] = []
    depth = 0
    start = 0
    position = 0
    while (match := _BRACKET.match(text, position)) is not None:  # anchored: nothing is scanned twice
        position = match.end()
        if match.group(1) in "{[":
            depth += 1
            if depth == MAX_DEPTH + 1:
                kept += (text[start : match.start(1)], "null")
        else:
            if depth == MAX_DEPTH + 1:
                start = match.end()
            depth -= 1
    kept.append(text[start:])
    return "".join(kept)


def pruned(value: Any) -> Any:
    """A copy of `value` with every container below `MAX_DEPTH` levels replaced by None, built without
    recursion; scalars are shared."""
    if not isinstance(value, dict | list):
        return value
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    pending: list[tuple[dict[Any, Any] | list[Any], dict[Any, Any] | list[Any], int]] = [(value, root, 1)]
    while pending:
        source, target, depth = pending.pop()
        for key, child in _items(source):
            copied: Any = child
            if isinstance(child, dict | list):
                copied = None
                if depth < MAX_DEPTH:
                    copied = {} if isinstance(child, dict) else []
                    pending.append((child, copied, depth + 1))
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


def too_deep(value: Any, limit: int = SPEC_DEPTH) -> str | None:
    """Where `value` (itself level 1) holds a container nested deeper than `limit` levels, as a path
    a person can find (`spec.predictor.affinity.a.a…`), or None; found without recursion, so any
    depth is safe to ask about."""
    if not isinstance(value, dict | list):
        return None
    pending: list[tuple[dict[Any, Any] | list[Any], list[Any]]] = [(value, [])]
    while pending:
        current, path = pending.pop()
        if len(path) >= limit:
            shown = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path[:SHOWN])
            return shown.lstrip(".") + "…"
        pending.extend(
            (child, [*path, key]) for key, child in _items(current) if isinstance(child, dict | list)
        )
    return None


def _items(container: dict[Any, Any] | list[Any]) -> Iterator[tuple[Any, Any]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)
