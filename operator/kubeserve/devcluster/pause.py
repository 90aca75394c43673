"""The real node's sandbox (pause) image, compiled and packed here because no registry is reachable.

containerd needs its sandbox image present locally. This module compiles a
static pause binary with gcc and writes it as an OCI image archive that
`ctr images import` takes, byte for byte the same on every build of the same
source, under the name containerd's CRI config gives as its sandbox image.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from kubeserve.devcluster import build

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"
"""The pause version Kubernetes v1.36 pins (kubeadm's PauseVersion). Kubelet itself no longer names a
sandbox image, and containerd 1.6 defaults to pause:3.6, so its CRI `sandbox_image` must be set to this."""

PAUSE_C = """\
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
    (void)signo;
    _exit(0);
}

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
    if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
        sigaction(SIGCHLD, &on_child, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
"""
"""Holds the pod's namespaces: exits 0 on SIGINT/SIGTERM, reaps orphans as PID 1, else sleeps."""

GCC_FLAGS = ("-static", "-O2", "-s")
USER = "65535:65535"
"""Like the upstream pause image: nobody needs root to hold namespaces."""
MTIME = 0
"""Every file in both tars gets this mtime, so the archive is reproducible."""

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def _source_digest() -> str:
    """Changes with the C source, the compiler flags or the image name: each makes a different archive."""
    digest = hashlib.sha256("\0".join([PAUSE_C, *GCC_FLAGS, PAUSE_IMAGE]).encode())
    return digest.hexdigest()[:12]


def archive_file() -> Path:
    """Where the image archive lives in the cache; it may not exist yet."""
    return build.cache_root() / f"pause-{_source_digest()}" / "pause.tar"


def compile_pause() -> bytes:
    """The static pause binary; static so that the image needs no libc of its own."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise build.BuildError("gcc is needed to compile the pause binary, and `gcc` is not on PATH")
    with tempfile.TemporaryDirectory(prefix="kubeserve-pause-") as work:
        source, binary = Path(work) / "pause.c", Path(work) / "pause"
        source.write_text(PAUSE_C)
        result = subprocess.run(
            [gcc, *GCC_FLAGS, "-o", str(binary), str(source)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if result.returncode != 0:
            raise build.BuildError(
                f"gcc could not build the static pause binary (static glibc comes with libc6-dev):\n"
                f"{result.stdout}"
            )
        return binary.read_bytes()


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, MTIME
    info.uid = info.gid = 0
    archive.addfile(info, io.BytesIO(data))


def _tar(files: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data, mode in files:
            _add(archive, name, data, mode)
    return buffer.getvalue()


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _digest(blob: bytes) -> str:
    return f"sha256:{hashlib.sha256(blob).hexdigest()}"


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def image_archive(binary: bytes, reference: str = PAUSE_IMAGE) -> bytes:
    """An OCI image layout, as one tar, whose only layer holds `binary` as /pause."""
    layer = _tar([("pause", binary, 0o755)])
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": USER},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": _descriptor(CONFIG_TYPE, config),
            "layers": [_descriptor(LAYER_TYPE, layer)],
        }
    )
    names = {"org.opencontainers.image.ref.name": reference, "io.containerd.image.name": reference}
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [
                _descriptor(MANIFEST_TYPE, manifest)
                | {"annotations": names, "platform": {"architecture": "amd64", "os": "linux"}}
            ],
        }
    )
    layout = _json({"imageLayoutVersion": "1.0.0"})
    blobs = [
        (f"blobs/sha256/{_digest(blob).removeprefix('sha256:')}", blob, 0o644)
        for blob in (layer, config, manifest)
    ]
    return _tar([("oci-layout", layout, 0o644), ("index.json", index, 0o644), *blobs])


def ensure_pause_archive() -> Path:
    """Build the archive into the cache once; a warm cache returns at once."""
    target = archive_file()
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(image_archive(compile_pause()))
        partial.replace(target)
    return target
