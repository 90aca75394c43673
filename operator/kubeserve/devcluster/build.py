"""Builds the dev cluster's binaries from their Go modules into a cache outside the clone.

Kubernetes and etcd cannot be `go install`ed directly: their go.mod files carry
`replace` lines into their own source trees. A small generated wrapper module
requires them instead, pinning every k8s.io staging module to the matching
v0.X.Y. KEDA's go.mod pins versions by `replace` lines, which `go install` refuses
too: its wrapper carries the same lines. kwok, helm and CoreDNS have no such
lines and install with a plain `go install`.
Data files that ship inside Go modules (kwok's stages, Gateway API's and KEDA's CRDs) are
copied out of the module cache next to the binaries. The real node's sandbox
(pause) image is compiled and packed locally by `pause`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from kubeserve.devcluster import pause, versions
from kubeserve.devcluster.versions import GoBinary

KWOK_STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
PROJECT_STAGES = Path(__file__).resolve().parent / "stages"
"""Kubeserve's own kwok stages, appended to kwok's (e.g. pods that never become Ready)."""
SIMULATE_ANNOTATION = "kubeserve.dev/simulate"
"""Pod annotation that hands a pod to a project stage instead of kwok's stock pod-ready."""
SKIP_SIMULATED = {
    "key": f'.metadata.annotations["{SIMULATE_ANNOTATION}"]',
    "operator": "NotIn",
    "values": ["never-ready"],
}
"""Added to the selector of kwok's stock pod-ready stage, so that it leaves simulated pods alone."""


class BuildError(RuntimeError):
    """The control plane could not be built; the message says which step failed."""


def cache_root() -> Path:
    """The cache outlives clones so that a reused machine skips the build."""
    configured = os.environ.get("KUBESERVE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "kubeserve"


def kubernetes_dir() -> Path:
    return cache_root() / f"k8s-{versions.KUBERNETES}"


def etcd_dir() -> Path:
    return cache_root() / f"etcd-{versions.ETCD}"


def cluster_dir() -> Path:
    """Where `kubeserve dev up` keeps the default cluster's state."""
    return cache_root() / "dev-cluster"


def kwok_dir() -> Path:
    return cache_root() / f"kwok-{versions.KWOK}"


def helm_dir() -> Path:
    return cache_root() / f"helm-{versions.HELM}"


def kind_dir() -> Path:
    return cache_root() / f"kind-{versions.KIND}"


def keda_dir() -> Path:
    return cache_root() / f"keda-{versions.KEDA}"


def coredns_dir() -> Path:
    """Named by the plugins too: a changed plugin list builds beside the old binary."""
    plugins = hashlib.sha256(" ".join(COREDNS_PLUGINS).encode()).hexdigest()[:8]
    return cache_root() / f"coredns-{versions.COREDNS}-{plugins}"


def _stages_digest() -> str:
    """A hash of what the stages file is made from besides kwok itself, so a changed stage is rebuilt."""
    digest = hashlib.sha256(json.dumps(SKIP_SIMULATED, sort_keys=True).encode())
    for path in sorted(PROJECT_STAGES.glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def kwok_stages_file() -> Path:
    return kwok_dir() / f"stages-{_stages_digest()}.yaml"


def gateway_api_crds_file() -> Path:
    return cache_root() / f"gateway-api-{versions.GATEWAY_API}" / "standard-crds.yaml"


def keda_crds_file() -> Path:
    return keda_dir() / "keda-crds.yaml"


def binary_path(name: str) -> Path:
    """Where a built binary lives; it may not exist yet."""
    homes = {
        "etcd": etcd_dir(),
        "kwok": kwok_dir(),
        "helm": helm_dir(),
        "kind": kind_dir(),
        "coredns": coredns_dir(),
        **{binary.name: keda_dir() for binary in versions.KEDA_BINARIES},
    }
    home = homes.get(name, kubernetes_dir())
    return home / "bin" / name


def all_binaries() -> list[GoBinary]:
    return [
        *versions.KUBERNETES_BINARIES,
        versions.ETCD_BINARY,
        versions.KWOK_BINARY,
        versions.HELM_BINARY,
        versions.COREDNS_BINARY,
        *versions.KEDA_BINARIES,
    ]


def missing_artifacts() -> list[str]:
    """Names of whatever `ensure_built` would still have to make."""
    missing = [b.name for b in all_binaries() if not binary_path(b.name).is_file()]
    data_files = (kwok_stages_file(), gateway_api_crds_file(), keda_crds_file(), pause.archive_file())
    missing += [p.name for p in data_files if not p.is_file()]
    return missing


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _go(args: list[str], cwd: Path | None = None, extra_env: dict[str, str] | None = None) -> str:
    if shutil.which("go") is None:
        raise BuildError("Go is needed to build the control plane binaries, and `go` is not on PATH")
    print("+ go", " ".join(args), flush=True)
    result = subprocess.run(
        ["go", *args], cwd=cwd, env=_go_env() | (extra_env or {}), stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise BuildError(f"`go {' '.join(args[:2])}` failed with exit code {result.returncode}")
    return result.stdout


def module_dir(module: str, version: str) -> Path:
    """The unpacked source of a module version in Go's module cache."""
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], cwd=cache_root()))
    return Path(info["Dir"])


def staging_replaces(kubernetes_go_mod: str, staging_version: str) -> list[str]:
    """One replace line per staging module that k8s.io/kubernetes points at its own tree."""
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)
    return [f"\t{m} => {m} {staging_version}" for m in modules]


def version_replaces(go_mod: str) -> list[str]:
    """A go.mod's `replace` lines that pin another module version (not a local directory), as replace
    block lines, so that a wrapper module resolves the same versions the module's own build does."""
    pinned = re.findall(r"^\s*(?:replace\s+)?(\S+(?:\s+v\S+)?\s+=>\s+\S+\s+v\S+)\s*$", go_mod, re.M)
    return [f"\t{line}" for line in pinned]


def kubernetes_ldflags() -> list[str]:
    """Stamp the version the way Kubernetes' own build does; v0.0.0 confuses compatibility checks."""
    major, minor = versions.KUBERNETES.removeprefix("v").split(".")[:2]
    fields = {
        "gitVersion": versions.KUBERNETES,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return [
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in fields.items()
    ]


def _build_wrapped(
    home: Path, version: str, binaries: tuple[GoBinary, ...], replaces: list[str], ldflags: list[str]
) -> None:
    """Build `binaries` from a throwaway module that requires them at `version`."""
    src = home / "src"
    src.mkdir(parents=True, exist_ok=True)
    replace_block = "replace (\n" + "\n".join(replaces) + "\n)\n" if replaces else ""
    (src / "go.mod").write_text(f"module kubeserve.dev/{home.name}\n\ngo 1.26\n\n{replace_block}")
    _go(["get", *(f"{b.package}@{version}" for b in binaries)], cwd=src)
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    flags = " ".join(["-s", "-w", *ldflags])
    for binary in binaries:
        _go(
            ["build", "-trimpath", "-ldflags", flags, "-o", str(bin_dir / binary.name), binary.package],
            cwd=src,
        )


def build_kubernetes() -> None:
    go_mod = (module_dir("k8s.io/kubernetes", versions.KUBERNETES) / "go.mod").read_text()
    replaces = staging_replaces(go_mod, versions.staging_version())
    _build_wrapped(
        kubernetes_dir(), versions.KUBERNETES, versions.KUBERNETES_BINARIES, replaces, kubernetes_ldflags()
    )


def build_etcd() -> None:
    _build_wrapped(etcd_dir(), versions.ETCD, (versions.ETCD_BINARY,), [], [])


KEDA_MODULE = "github.com/kedacore/keda/v2"


def build_keda() -> None:
    """KEDA's operator and metrics adapter, stamped with their version as KEDA's Makefile does."""
    go_mod = (module_dir(KEDA_MODULE, versions.KEDA) / "go.mod").read_text()
    stamp = [f"-X {KEDA_MODULE}/version.Version={versions.KEDA.removeprefix('v')}"]
    _build_wrapped(keda_dir(), versions.KEDA, versions.KEDA_BINARIES, version_replaces(go_mod), stamp)


COREDNS_PLUGINS = ("bind", "ready", "health", "errors", "cache", "kubernetes")
"""The plugins the dev cluster's Corefile uses, in CoreDNS's own chain order."""


def build_coredns() -> None:
    """CoreDNS with only `COREDNS_PLUGINS`, as CoreDNS documents building it as a library.

    A plain `go install` of CoreDNS compiles every plugin and the cloud SDKs behind them (Route 53,
    Azure, Cloud DNS): minutes more on a fresh machine for a server that answers cluster names only.
    """
    src = coredns_dir() / "src"
    src.mkdir(parents=True, exist_ok=True)
    module = versions.COREDNS_BINARY.package
    imports = "\n".join(f'\t_ "{module}/plugin/{name}"' for name in COREDNS_PLUGINS)
    directives = ", ".join(f'"{name}"' for name in COREDNS_PLUGINS)
    (src / "go.mod").write_text("module kubeserve.dev/coredns\n\ngo 1.26\n")
    (src / "main.go").write_text(
        "package main\n\nimport (\n"
        f'\t"{module}/core/dnsserver"\n\t"{module}/coremain"\n{imports}\n)\n\n'
        f"func init() {{ dnsserver.Directives = []string{{{directives}}} }}\n\n"
        "func main() { coremain.Run() }\n"
    )
    _go(["get", f"{module}@{versions.COREDNS}"], cwd=src)
    _go(["mod", "tidy"], cwd=src)
    bin_dir = coredns_dir() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(bin_dir / "coredns"), "."], cwd=src)


def go_install(binary: GoBinary, version: str, home: Path) -> None:
    """For modules without `replace` lines: a plain `go install` into `home/bin`."""
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _go(["install", f"{binary.package}@{version}"], extra_env={"GOBIN": str(bin_dir)})


def _write_documents(texts: list[str], target: Path) -> None:
    """Write YAML texts as one multi-document file, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text("".join(f"---\n{text}\n" for text in texts))
    partial.replace(target)


def _stock_stage(path: Path) -> str:
    """A stage of kwok's as shipped, except that pod-ready skips pods a project stage simulates."""
    stage = yaml.safe_load(path.read_text())
    if stage["metadata"]["name"] != "pod-ready":
        return path.read_text()
    stage["spec"]["selector"]["matchExpressions"].append(SKIP_SIMULATED)
    return yaml.safe_dump(stage, sort_keys=False)


def copy_kwok_stages() -> None:
    """kwok needs its stage definitions as configuration; they ship in its module, ours in this package."""
    root = module_dir("sigs.k8s.io/kwok", versions.KWOK) / "kustomize" / "stage"
    stock = sorted(
        p for s in KWOK_STAGES for p in (root / s).glob("*.yaml") if p.name != "kustomization.yaml"
    )
    project = sorted(PROJECT_STAGES.glob("*.yaml"))
    _write_documents([_stock_stage(p) for p in stock] + [p.read_text() for p in project], kwok_stages_file())


def copy_gateway_api_crds() -> None:
    root = module_dir("sigs.k8s.io/gateway-api", versions.GATEWAY_API) / "config" / "crd" / "standard"
    _write_documents(
        [p.read_text() for p in sorted(root.glob("*.yaml")) if p.name != "kustomization.yaml"],
        gateway_api_crds_file(),
    )


def copy_keda_crds() -> None:
    """KEDA's CRDs as its module ships them (config/crd/bases), applied by the tests that run KEDA."""
    root = module_dir(KEDA_MODULE, versions.KEDA) / "config" / "crd" / "bases"
    _write_documents([p.read_text() for p in sorted(root.glob("*.yaml"))], keda_crds_file())


def ensure_kind() -> Path:
    """kind is built only for the e2e suite, and only where Docker can run it."""
    if not binary_path("kind").is_file():
        go_install(versions.KIND_BINARY, versions.KIND, kind_dir())
    return binary_path("kind")


def ensure_built() -> None:
    """Build whatever is missing; a warm cache returns at once."""
    cache_root().mkdir(parents=True, exist_ok=True)
    missing = set(missing_artifacts())
    if missing & {b.name for b in versions.KUBERNETES_BINARIES}:
        build_kubernetes()
    if "etcd" in missing:
        build_etcd()
    if "kwok" in missing:
        go_install(versions.KWOK_BINARY, versions.KWOK, kwok_dir())
    if "helm" in missing:
        go_install(versions.HELM_BINARY, versions.HELM, helm_dir())
    if "coredns" in missing:
        build_coredns()
    if missing & {b.name for b in versions.KEDA_BINARIES}:
        build_keda()
    if kwok_stages_file().name in missing:
        copy_kwok_stages()
    if gateway_api_crds_file().name in missing:
        copy_gateway_api_crds()
    if keda_crds_file().name in missing:
        copy_keda_crds()
    if pause.archive_file().name in missing:
        pause.ensure_pause_archive()
