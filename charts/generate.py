"""Keep the chart and the plain manifests one source each: `python charts/generate.py [--check]`.

- `crds/` (generated from the API models by `make crds`) is copied into the chart's `crds/`.
- `manifests/runtimes/` (written by hand, one file per runtime) is copied into the chart's
  `files/runtimes/`, which `templates/runtimes.yaml` includes verbatim.
- The chart's templates are the source of the operator's install manifests:
  `manifests/operator/rbac.yaml` and `deployment.yaml` are `helm template` output.

With `--check`, nothing is written and the exit status says whether anything is stale;
tests/unit/test_chart.py runs the same comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kubeserve.devcluster import versions

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "kubeserve"
NAMESPACE = "kubeserve-system"

# Folders whose every *.yaml is generated: files there that no source explains are stale.
COPIES = {ROOT / "crds": CHART / "crds", ROOT / "manifests" / "runtimes": CHART / "files" / "runtimes"}
RENDERED = {
    ROOT / "manifests" / "operator" / "rbac.yaml": ["templates/rbac.yaml"],
    ROOT / "manifests" / "operator" / "deployment.yaml": [
        "templates/configmap.yaml",
        "templates/deployment.yaml",
    ],
}
# A helm built by `go install` assumes Kubernetes 1.20, below the chart's kubeVersion; say which it is.
KUBE_VERSION = ["--kube-version", versions.KUBERNETES]
HEADER = "# Generated from charts/kubeserve by charts/generate.py (helm template); do not edit.\n"


def helm_binary() -> str:
    """$HELM, else the pinned helm the dev tooling builds, else helm on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    from kubeserve.devcluster import build

    pinned = build.binary_path("helm")
    if pinned.exists():
        return str(pinned)
    found = shutil.which("helm")
    if found is None:
        raise SystemExit("helm not found: run `kubeserve dev build` or set HELM")
    return found


def render(templates: list[str], helm: str) -> str:
    """The chart's templates rendered as the plain install manifests of the kubeserve-system namespace."""
    show = [arg for template in templates for arg in ("--show-only", template)]
    command = [helm, "template", "kubeserve", str(CHART), "--namespace", NAMESPACE, *KUBE_VERSION, *show]
    return HEADER + subprocess.run(command, check=True, capture_output=True, text=True).stdout


def expected(helm: str) -> dict[Path, str]:
    """Every generated file and the text it should have."""
    files = {
        target / source.name: source.read_text()
        for source_dir, target in COPIES.items()
        for source in sorted(source_dir.glob("*.yaml"))
    }
    files.update({path: render(templates, helm) for path, templates in RENDERED.items()})
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    """Generated files that differ from what is on disk, and leftovers no source explains."""
    leftovers = [path for target in COPIES.values() for path in target.glob("*.yaml") if path not in files]
    differing = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    return sorted(differing + leftovers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when a file is stale")
    files = expected(helm_binary())
    outdated = stale(files)
    if parser.parse_args().check:
        for path in outdated:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if outdated else 0
    for path in outdated:
        if path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[path])
        else:
            path.unlink()
        print(f"wrote {path.relative_to(ROOT)}" if path in files else f"removed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
