"""What the kind suite needs besides Docker: kind and helm, and the three images built from this tree.

kind and helm are built from their Go modules at the versions pinned in
kubeserve.devcluster.versions, into the same cache as the dev cluster's binaries
(KUBESERVE_CACHE, else ~/.cache/kubeserve); only these two, never the control plane.

The images get the names the chart and the shipped runtime use by default, read
from the chart and the runtime manifest, so the suite installs exactly what a
release of this tree would pull:

- the operator: `image.repository` in charts/kubeserve/values.yaml, tagged with
  `image.tag` or else the chart's appVersion;
- the storage initializer: `config.storageInitializer.image` in the same values;
- the model server: the image of the `kubeserve-server` ClusterServingRuntime
  (manifests/runtimes/kubeserve-server.yaml, which the chart ships verbatim).

The suite's session fixture runs the same `docker build` commands before it
loads the images into kind, so it always tests the tree as it is; Docker's layer
cache makes an unchanged image a matter of seconds. `python -m tests.e2e.prepare`
does all of it ahead of the suite with the build output on the terminal (with
`--tools`, only kind and helm); the GitHub workflow runs it as a step of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeserve.devcluster import build, versions

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubeserve"
SERVER_RUNTIME = REPO / "manifests" / "runtimes" / "kubeserve-server.yaml"
BUILD_TIMEOUT = 1800
REQUIRE_DOCKER = "KUBESERVE_E2E_REQUIRE_DOCKER"
"""Set (CI does), the kind tests fail instead of skipping where no Docker engine answers."""
NO_ATTESTATIONS = {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
"""The images never leave this machine, so they carry no provenance attestation: under Docker's
containerd image store one would turn each image into an index with an in-toto manifest, more for
`kind load` (which imports every platform of an index) to trip on. Older builders ignore the variable."""


@dataclass(frozen=True)
class Image:
    """One image of this tree: where its Dockerfile is, and the name the install expects it under."""

    role: str
    dockerfile: str
    """Relative to the repository root, which is the build context."""
    repository: str
    tag: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def build_command(self) -> list[str]:
        """The `docker build` to run from the repository root (with NO_ATTESTATIONS in its environment)."""
        return ["docker", "build", "-f", self.dockerfile, "-t", self.reference, "."]


class ImageBuildError(RuntimeError):
    """`docker build` failed; the message has the command and the end of its output."""


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _split(reference: str) -> tuple[str, str]:
    """repository and tag of `registry[:port]/path:tag`."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        raise ValueError(f"{reference!r} has no tag: the suite loads images by name and tag")
    return repository, tag


def images() -> tuple[Image, Image, Image]:
    """The operator, the storage initializer and the model server, under their default names."""
    values = _yaml(CHART / "values.yaml")
    app_version = str(_yaml(CHART / "Chart.yaml")["appVersion"])
    operator = Image(
        "operator",
        "runtime-images/operator/Dockerfile",
        values["image"]["repository"],
        str(values["image"].get("tag") or app_version),
    )
    storage = Image(
        "storage-initializer",
        "runtime-images/storage-initializer/Dockerfile",
        *_split(values["config"]["storageInitializer"]["image"]),
    )
    server_image = _yaml(SERVER_RUNTIME)["spec"]["containers"][0]["image"]
    server = Image("model-server", "runtime-images/model-server/Dockerfile", *_split(server_image))
    return operator, storage, server


def helm_values() -> dict[str, Any]:
    """The suite's only overrides of the chart's values: the images it loaded, never pulled."""
    operator, storage, _ = images()
    return {
        "image": {"repository": operator.repository, "tag": operator.tag, "pullPolicy": "IfNotPresent"},
        "config": {"storageInitializer": {"image": storage.reference}},
    }


def ensure_helm() -> Path:
    """The pinned helm, built from its Go module the first time (as `kubeserve dev build` does)."""
    path = build.binary_path("helm")
    if not path.is_file():
        build.go_install(versions.HELM_BINARY, versions.HELM, build.helm_dir())
    return path


def build_image(image: Image, capture: bool = True) -> None:
    """`docker build` from the repository root; raises ImageBuildError with what went wrong."""
    command = image.build_command()
    result = subprocess.run(
        command,
        cwd=REPO,
        env=os.environ | NO_ATTESTATIONS,
        capture_output=capture,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-40:])
        raise ImageBuildError(
            f"`{' '.join(command)}` (from {REPO}) failed with exit code {result.returncode}"
            + (f"; its last lines:\n{tail}" if tail else "")
        )


def main(argv: list[str] | None = None) -> int:
    """Build kind, helm and the three images (only kind and helm with --tools), showing each build."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments not in ([], ["--tools"]):
        print("usage: python -m tests.e2e.prepare [--tools]", file=sys.stderr)
        return 2
    try:
        print(f"kind: {build.ensure_kind()}", flush=True)
        print(f"helm: {ensure_helm()}", flush=True)
        if arguments:
            return 0
        for image in images():
            print(f"+ {' '.join(image.build_command())}", flush=True)
            build_image(image, capture=False)
    except (build.BuildError, ImageBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("ready: " + ", ".join(image.reference for image in images()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
