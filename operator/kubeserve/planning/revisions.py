"""Revisions: every distinct pod template of a component is a revision, named from its hash.

The same template always hashes to the same name, so a reconcile that changes
nothing never makes a new revision, and going back to an earlier spec finds
its earlier revision name again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubeserve.planning.naming import component_name

HASH_LENGTH = 10


def template_hash(template: dict[str, Any]) -> str:
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def revision_name(service: str, component: str, template_digest: str) -> str:
    return f"{component_name(service, component)}-{template_digest}"
