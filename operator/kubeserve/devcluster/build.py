"""Builds the dev cluster's binaries from their Go modules into a cache outside the clone.

Kubernetes and etcd cannot be `go install`ed directly: their go.mod files carry
`replace` lines into their own source trees. A small generated wrapper module
requires them instead, pinning every k8s.io staging module to the matching
v0.X.Y. kwok has no such lines and installs with a plain `go install`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kubeserve.devcluster import versions
from kubeserve.devcluster.versions import GoBinary


def cache_root() -> Path:
    """The cache outlives clones so that a reused machine skips the build."""
    configured = os.environ.get("KUBESERVE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "kubeserve"


def kubernetes_dir() -> Path:
    return cache_root() / f"k8s-{versions.KUBERNETES}"


def etcd_dir() -> Path:
    return cache_root() / f"etcd-{versions.ETCD}"


def kwok_dir() -> Path:
    return cache_root() / f"kwok-{versions.KWOK}"


def binary_path(name: str) -> Path:
    """Where a built binary lives; it may not exist yet."""
    home = {"etcd": etcd_dir(), "kwok": kwok_dir()}.get(name, kubernetes_dir())
    return home / "bin" / name


def all_binaries() -> list[GoBinary]:
    return [*versions.KUBERNETES_BINARIES, versions.ETCD_BINARY, versions.KWOK_BINARY]


def missing_binaries() -> list[str]:
    return [b.name for b in all_binaries() if not binary_path(b.name).is_file()]


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _run(args: list[str], cwd: Path) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=cwd, env=_go_env(), check=True)


def _go_mod_file(module: str, version: str, workdir: Path) -> str:
    """The go.mod text of a module version, fetched through the module proxy."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=workdir,
        env=_go_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r'"GoMod":\s*"([^"]+)"', out)
    if match is None:
        raise RuntimeError(f"go mod download gave no go.mod for {module}@{version}")
    return Path(match.group(1)).read_text()


def staging_replaces(kubernetes_go_mod: str, staging_version: str) -> list[str]:
    """One replace line per staging module that k8s.io/kubernetes points at its own tree."""
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)
    return [f"\t{m} => {m} {staging_version}" for m in modules]


def _version_ldflags() -> str:
    """Stamp the version the way Kubernetes' own build does; v0.0.0 confuses compatibility checks."""
    major, minor = versions.KUBERNETES.removeprefix("v").split(".")[:2]
    fields = {
        "gitVersion": versions.KUBERNETES,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in fields.items()
    ]
    return " ".join(["-s", "-w", *flags])


def _build_wrapped(home: Path, module: str, version: str, binaries: list[GoBinary], replaces: list[str]) -> None:
    src = home / "src"
    src.mkdir(parents=True, exist_ok=True)
    replace_block = "replace (\n" + "\n".join(replaces) + "\n)\n" if replaces else ""
    (src / "go.mod").write_text(
        f"module kubeserve.dev/{home.name}\n\ngo 1.26\n\n{replace_block}"
    )
    _run(["go", "get", *(f"{b.package}@{version}" for b in binaries)], src)
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for binary in binaries:
        _run(
            ["go", "build", "-trimpath", "-ldflags", _version_ldflags(), "-o", str(bin_dir / binary.name), binary.package],
            src,
        )
    del module


def build_kubernetes() -> None:
    home = kubernetes_dir()
    (home / "src").mkdir(parents=True, exist_ok=True)
    go_mod = _go_mod_file("k8s.io/kubernetes", versions.KUBERNETES, home / "src")
    replaces = staging_replaces(go_mod, versions.staging_version())
    _build_wrapped(home, "k8s.io/kubernetes", versions.KUBERNETES, list(versions.KUBERNETES_BINARIES), replaces)


def build_etcd() -> None:
    _build_wrapped(etcd_dir(), versions.ETCD_BINARY.package, versions.ETCD, [versions.ETCD_BINARY], [])


def build_kwok() -> None:
    bin_dir = kwok_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = _go_env() | {"GOBIN": str(bin_dir)}
    args = ["go", "install", f"{versions.KWOK_BINARY.package}@{versions.KWOK}"]
    print("+", " ".join(args), flush=True)
    subprocess.run(args, env=env, check=True)


def ensure_built() -> None:
    """Build whatever is missing; a warm cache returns at once."""
    if shutil.which("go") is None and missing_binaries():
        sys.exit("kubeserve dev: Go is needed to build the control plane binaries")
    missing = set(missing_binaries())
    if missing & {b.name for b in versions.KUBERNETES_BINARIES}:
        build_kubernetes()
    if "etcd" in missing:
        build_etcd()
    if "kwok" in missing:
        build_kwok()
