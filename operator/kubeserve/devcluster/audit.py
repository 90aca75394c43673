"""Reading the local control plane's audit log: who sent which request, to count an operator's writes
and to find the requests an account was refused.

The API server appends one JSON line per request stage; a tail started at some
moment sees only the requests logged after it, so a test or a benchmark counts
exactly what happened during its own window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    audit_id: str
    verb: str
    user_agent: str
    resource: str
    namespace: str
    name: str
    subresource: str
    user: str
    code: int
    """The HTTP status of the answer (0 where the event has none)."""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        ref = event.get("objectRef") or {}
        return cls(
            audit_id=event.get("auditID", ""),
            verb=event.get("verb", ""),
            user_agent=event.get("userAgent", ""),
            resource=ref.get("resource", ""),
            namespace=ref.get("namespace", ""),
            name=ref.get("name", ""),
            subresource=ref.get("subresource", ""),
            user=(event.get("user") or {}).get("username", ""),
            code=(event.get("responseStatus") or {}).get("code", 0),
        )


class AuditTail:
    """The requests logged since this tail was made (the log's size then is where it starts)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._start = self.path.stat().st_size if self.path.exists() else 0

    def requests(self, user_agent_prefix: str = "") -> list[Request]:
        """Each request once (a watch logs several stages), in log order, from matching user agents."""
        with self.path.open("rb") as log:
            log.seek(self._start)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        seen: dict[str, Request] = {}
        for line in complete.splitlines():
            request = Request.from_event(json.loads(line))
            if request.user_agent.startswith(user_agent_prefix):
                seen.setdefault(request.audit_id, request)
        return list(seen.values())

    def writes(self, user_agent_prefix: str = "") -> list[Request]:
        return [r for r in self.requests(user_agent_prefix) if r.is_write]
