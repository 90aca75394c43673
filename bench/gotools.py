"""The load generators built from Go modules: ghz (gRPC) and vegeta (open-loop HTTP at a fixed rate).

Neither is packaged for Debian at a usable version, and both are single Go binaries, so they are
built with `go install` into ~/.cache/kubeserve/bin (Go's build cache stays in its default place).
A binary already there is kept when `go version -m` says it was built from the pinned module
version, so a second call costs milliseconds. The benchmarks call `tool("ghz")`; by hand:

    .venv/bin/python bench/gotools.py            # installs both, prints their paths
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path.home() / ".cache" / "kubeserve" / "bin"
# name -> (package to install, its module, the module's version)
TOOLS = {
    "ghz": ("github.com/bojand/ghz/cmd/ghz", "github.com/bojand/ghz", "v0.93.0"),
    "vegeta": ("github.com/tsenart/vegeta/v12", "github.com/tsenart/vegeta/v12", "v12.13.0"),
}


def _built_from(binary: Path, module: str, version: str, go: str) -> bool:
    """Whether `binary` records `module` at `version` as its main module."""
    result = subprocess.run([go, "version", "-m", str(binary)], capture_output=True, text=True)
    return any(line.split()[:3] == ["mod", module, version] for line in result.stdout.splitlines())


def tool(name: str) -> Path:
    """The path of the named tool, built first if it is missing or of another version."""
    package, module, version = TOOLS[name]
    binary = BIN / name
    go = shutil.which("go")
    if go is None:
        if binary.exists():  # built earlier; without Go its version cannot be read, so trust it
            return binary
        raise RuntimeError(f"{name} is not in {BIN} and Go is needed to build it (go install)")
    if binary.exists() and _built_from(binary, module, version, go):
        return binary
    print(f"building {name} ({module} {version}) into {BIN} ...", file=sys.stderr, flush=True)
    BIN.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "GOBIN": str(BIN)}
    subprocess.run([go, "install", f"{package}@{version}"], check=True, env=environment, timeout=1200)
    return binary


if __name__ == "__main__":
    for name in TOOLS:
        print(tool(name))
