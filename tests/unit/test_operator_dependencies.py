"""The operator image installs Kubeserve with the `operator` extra alone: everything `kubeserve run` imports
must come from it (or what it depends on), not from another extra that the dev venv happens to have."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LOADED = """
import json, sys
before = set(sys.modules)  # what the interpreter loads at start (site hooks) is not the operator's
for client in ("kubernetes", "kubernetes_asyncio", "pykube"):
    sys.modules.setdefault(client, None)
import kubeserve.cli.main, kubeserve.handlers
new = [name for name, module in sys.modules.items() if module and name not in before]
print(json.dumps(sorted({name.split(".")[0] for name in new})))
"""


def _applicable(requirements: list[str]) -> list[str]:
    """Names of the requirements that apply here, extras left out."""
    parsed = [Requirement(r) for r in requirements]
    return [canonicalize_name(r.name) for r in parsed if r.marker is None or r.marker.evaluate({"extra": ""})]


def _operator_closure() -> set[str]:
    """pyproject.toml's core dependencies and its `operator` extra and, transitively, theirs (no other
    extras anywhere)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    seen: set[str] = set()
    pending = _applicable([*project["dependencies"], *project["optional-dependencies"]["operator"]])
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += _applicable(distribution(name).requires or [])
    return seen


def _optional_of(names: set[str]) -> set[str]:
    """What those distributions name under an extra of their own: modules they import only if present
    (aiohttp's brotli, which another dev dependency installs here), which the image does without."""
    found = set()
    for name in names:
        for requirement in map(Requirement, distribution(name).requires or []):
            if requirement.marker is not None and "extra" in str(requirement.marker):
                found.add(canonicalize_name(requirement.name))
    return found


def test_the_operator_imports_only_its_own_dependencies() -> None:
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", LOADED], capture_output=True, check=True).stdout
    )
    owners = packages_distributions()
    closure = _operator_closure()
    allowed = closure | _optional_of(closure) | {"kubeserve"}
    foreign = {
        module: owners[module]
        for module in loaded
        if module in owners and not {canonicalize_name(d) for d in owners[module]} & allowed
    }
    assert not foreign, f"imported from outside the operator extra: {foreign}"
