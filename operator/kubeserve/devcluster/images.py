"""Kubeserve's images, built without a Docker engine or a registry, for the dev cluster's real node.

buildah builds the Dockerfiles as they are. Their base, python:3.11-slim-bookworm, cannot be pulled
here, so a stand-in made by debootstrap from Debian's packages goes in through the Dockerfiles'
`BASE` argument. Each image is cached by the content that goes into it (what .dockerignore lets
through, its Dockerfile and the stand-in's recipe), and exported as an OCI archive that
`ctr images import` loads into the node's containerd. A warm cache touches no tool at all.
"""

from __future__ import annotations

import ast
import fcntl
import gzip
import hashlib
import json
import os
import posixpath
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

from kubeserve.config import StorageInitializerConfig
from kubeserve.devcluster import build

REPO = Path(__file__).resolve().parents[3]
"""The build context: every Dockerfile builds from the repository root."""

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "netbase")
"""What python:3.11-slim-bookworm gives the Dockerfiles (minbase already has useradd, from passwd)."""
BASE_NAME = "localhost/kubeserve/python-base"
BASE_CONFIG: tuple[str, ...] = ("--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
BASE_CONFIG += ("--env", "LANG=C.UTF-8", "--cmd", '["python3"]')
"""The real base's configuration: its PATH (which the Dockerfiles extend), locale and command."""
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
"""debian:bookworm-slim's dpkg filter, kept in the stand-in so that the images' own apt-get obeys it."""
BASE_LITTER = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/log/*.log",
    "var/log/apt/*",
    "etc/apt/sources.list",
    "etc/resolv.conf",
    "etc/hostname",
    "usr/share/doc/*/*",
    "usr/share/groff/*",
    "usr/share/info/*",
    "usr/share/lintian/overrides/*",
    "usr/share/locale/*",
    "usr/share/man/*",
)
"""Removed from debootstrap's tree: package lists and caches, its logs and what it copied from this host,
and what DPKG_EXCLUDES leaves out (each package's copyright stays)."""
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
CONTAINER_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PIP_CONF = "/etc/pip.conf"
"""Where builds mount this host's pip settings. The stand-in holds it empty, so that the mount point is
no file of a layer."""
PIP_OPTIONS = frozenset({"index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout"})
"""The host's pip settings that a build takes over; its CA bundle is mounted, host paths are not."""


@dataclass(frozen=True)
class Image:
    """One of the project's images: its short name, its Dockerfile, the reference the tree runs it by."""

    name: str
    dockerfile: Path
    reference: str


@dataclass(frozen=True)
class BuiltImage:
    """An image in the cache: the archive that `ctr -n k8s.io images import` takes, its unpacked size."""

    image: Image
    key: str
    archive: Path
    size: int


def all_images() -> list[Image]:
    """The four images, named as the chart, the operator's configuration and the runtime refer to them."""
    chart = REPO / "charts" / "kubeserve"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    app_version = yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    operator, activator = values["image"], values["activator"]["image"]
    runtime = yaml.safe_load((REPO / "manifests" / "runtimes" / "kubeserve-server.yaml").read_text())
    references = {
        "operator": f"{operator['repository']}:{operator['tag'] or app_version}",
        "activator": f"{activator_repository(operator['repository'], activator['repository'])}:"
        f"{activator['tag'] or app_version}",
        "storage-initializer": StorageInitializerConfig().image,
        "model-server": runtime["spec"]["containers"][0]["image"],
    }
    return [
        Image(name, REPO / "runtime-images" / name / "Dockerfile", reference)
        for name, reference in references.items()
    ]


def activator_repository(operator: str, activator: str) -> str:
    """The chart's rule (`kubeserve.activatorImage`): the activator's repository when set, else the
    operator's with its last segment replaced (`<registry>/<org>/activator`)."""
    return activator or f"{posixpath.dirname(operator)}/activator"


def images_dir() -> Path:
    return build.cache_root() / "images"


def _field(stanza: str, name: str) -> list[str]:
    found = re.search(rf"^{name}:(.*)$", stanza, re.M)
    return found.group(1).split() if found else []


def _debian_sources() -> list[str]:
    """This host's deb822 stanzas for the stand-in's release: the mirror is whatever the machine uses."""
    if not DEBIAN_SOURCES.is_file():
        raise build.BuildError(f"the stand-in base needs Debian's mirror, and {DEBIAN_SOURCES} is missing")
    stanzas = [
        stanza.strip()
        for stanza in re.split(r"\n\s*\n", DEBIAN_SOURCES.read_text())
        if any(suite.partition("-")[0] == SUITE for suite in _field(stanza, "Suites"))
    ]
    if not any(SUITE in _field(stanza, "Suites") for stanza in stanzas):
        raise build.BuildError(f"{DEBIAN_SOURCES} has no stanza for Debian {SUITE}")
    return stanzas


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_reference() -> str:
    """The stand-in's name, tagged by what makes it: another recipe or other sources make another base."""
    recipe = (SUITE, *BASE_PACKAGES, *BASE_CONFIG, DPKG_EXCLUDES, *BASE_LITTER, PIP_CONF)
    key = _digest(*recipe, *_debian_sources())
    return f"{BASE_NAME}:3.11-{SUITE}-{key}"


Rules = list[tuple[re.Pattern[str], bool]]
""".dockerignore's patterns as regular expressions, each with whether it is an exception (`!`)."""
WILDCARDS = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def _dockerignore() -> tuple[Rules, list[str]]:
    """The root .dockerignore's rules, and its exceptions as written."""
    rules: Rules = []
    exceptions: list[str] = []
    ignore = REPO / ".dockerignore"
    for line in ignore.read_text().splitlines() if ignore.is_file() else []:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        exception = text.startswith("!")
        text = text.removeprefix("!").strip().strip("/")
        tokens = re.split(r"(\*\*/|\*\*|\*|\?)", text)
        rules.append((re.compile("".join(WILDCARDS.get(t, re.escape(t)) for t in tokens)), exception))
        if exception:
            exceptions.append(text)
    return rules, exceptions


def _excluded(relative: str, rules: Rules) -> bool:
    """Docker's rule: the last pattern that matches the path, or a directory above it, decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern, exception in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            excluded = not exception
    return excluded


def context_files() -> list[Path]:
    """The build context's files, relative to the repository, as the builder sees them."""
    rules, exceptions = _dockerignore()

    def pruned(relative: str) -> bool:
        reopened = any(re.search(r"[*?\[]", e) or e.startswith(f"{relative}/") for e in exceptions)
        return _excluded(relative, rules) and not reopened

    files: list[Path] = []
    for directory, subdirectories, names in os.walk(REPO):
        here = Path(directory).relative_to(REPO)
        subdirectories[:] = [d for d in subdirectories if not pruned((here / d).as_posix())]
        files += [here / name for name in names if not _excluded((here / name).as_posix(), rules)]
    return sorted(files)


def context_digest() -> str:
    """A hash of the build context: each file's path, executable bit and content."""
    digest = hashlib.sha256()
    for relative in context_files():
        path = REPO / relative
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative.as_posix()}\0{executable}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()


def image_key(image: Image, base: str, context: str) -> str:
    """What goes into the image: the base, the Dockerfile and the context (and the name it carries)."""
    return _digest(base, image.reference, image.dockerfile.read_text(), context)


def archive_path(image: Image, key: str) -> Path:
    return images_dir() / f"{image.name}-{key}.oci.tar"


def _sidecar(archive: Path) -> Path:
    return archive.with_name(f"{archive.name}.json")


def _cached(image: Image, key: str) -> BuiltImage | None:
    """The cached build of this content. Its sidecar holds the unpacked size, slow to read off the archive."""
    archive = archive_path(image, key)
    if not (archive.is_file() and _sidecar(archive).is_file()):
        return None
    return BuiltImage(image, key, archive, json.loads(_sidecar(archive).read_text())["size"])


def check_prerequisites() -> None:
    """One line saying what this machine lacks to build the images, if anything."""
    if os.geteuid() != 0:
        uid = os.geteuid()
        raise build.BuildError(f"building the images needs root (buildah, debootstrap), not uid {uid}")
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            raise build.BuildError(f"building the images needs {tool}: apt-get install {tool}")


def _run(command: list[str], log: Path, capture: bool = False) -> str:
    """Run a step with its output appended to `log` as it comes (or returned, with `capture`); on
    failure, the message quotes the log's last lines."""
    with log.open("a") as out:
        out.write(f"+ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=subprocess.PIPE if capture else out, stderr=out, text=True)
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise build.BuildError(f"{command[0]} failed (exit {result.returncode}); the end of {log}:\n{tail}")
    return (result.stdout or "").strip()


def buildah(*args: str) -> list[str]:
    """A buildah command on Kubeserve's own storage in the cache, with the vfs driver (no overlay needed)."""
    storage = images_dir() / "storage"
    flags = ("--root", f"{storage}/root", "--runroot", f"{storage}/run", "--storage-driver", "vfs")
    return ["buildah", *flags, *args]


def _exists(reference: str) -> bool:
    inspected = subprocess.run(buildah("inspect", "--type", "image", reference), capture_output=True)
    return inspected.returncode == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def build_base(reference: str, log: Path) -> None:
    """debootstrap straight into a scratch container's root, trimmed as debian:bookworm-slim is."""
    stanzas = _debian_sources()
    mirror = next(_field(s, "URIs")[0] for s in stanzas if SUITE in _field(s, "Suites"))
    container = _run(buildah("from", "scratch"), log, capture=True)
    try:
        root = Path(_run(buildah("mount", container), log, capture=True))
        include = ",".join(BASE_PACKAGES)
        _run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(root), mirror], log)
        for pattern in BASE_LITTER:
            for path in root.glob(pattern):
                if path.name != "copyright":
                    _remove(path)
        (root / DEBIAN_SOURCES.relative_to("/")).write_text("\n\n".join(stanzas) + "\n")
        (root / "etc/dpkg/dpkg.cfg.d/slim").write_text(DPKG_EXCLUDES)
        (root / PIP_CONF.lstrip("/")).touch()
        _run(buildah("config", *BASE_CONFIG, container), log)
        _run(buildah("commit", "--format", "oci", container, reference), log)
    finally:
        subprocess.run(buildah("rm", container), capture_output=True)


def _pip_settings() -> dict[str, str]:
    """This host's effective pip configuration (files, then the environment, which wins)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, str] = {}
    for line in sorted(listed.stdout.splitlines(), key=lambda line: line.startswith(":env:")):
        key, _, value = line.partition("=")
        settings[key.rpartition(".")[2]] = str(ast.literal_eval(value))
    return settings


def build_volumes() -> list[str]:
    """Mounts for the build's RUN steps only, never in an image: pip reaches its index as this host's
    does, through this host's pip settings and CA bundle (at the path the stand-in's OpenSSL reads)."""
    settings = _pip_settings()
    bundle = settings.get("cert") or ssl.get_default_verify_paths().cafile
    lines = ["[global]", *(f"{key} = {value}" for key, value in settings.items() if key in PIP_OPTIONS)]
    volumes = []
    if bundle and Path(bundle).is_file():
        lines.append(f"cert = {CONTAINER_CA_BUNDLE}")
        volumes += ["--volume", f"{bundle}:{CONTAINER_CA_BUNDLE}:ro"]
    pip_conf = images_dir() / "pip.conf"
    pip_conf.write_text("\n".join(lines) + "\n")
    return [*volumes, "--volume", f"{pip_conf}:{PIP_CONF}:ro"]


def unpacked_size(archive: Path) -> int:
    """The sum of the image's layers uncompressed: what `docker images` calls an image's size."""
    with tarfile.open(archive) as tar:

        def read(name: str) -> IO[bytes]:
            member = tar.extractfile(name)
            if member is None:
                raise build.BuildError(f"{archive} has no {name}")
            return member

        def blob(descriptor: dict[str, str]) -> IO[bytes]:
            return read("blobs/" + descriptor["digest"].replace(":", "/"))

        manifest = json.load(blob(json.load(read("index.json"))["manifests"][0]))
        size = 0
        for layer in manifest["layers"]:
            stream = blob(layer)
            unpacked = gzip.GzipFile(fileobj=stream) if layer["mediaType"].endswith("+gzip") else stream
            while chunk := unpacked.read(1 << 20):
                size += len(chunk)
    return size


def _build(image: Image, key: str, base: str) -> BuiltImage:
    """Build one image with buildah, export it as an OCI archive, and drop its previous builds."""
    log = images_dir() / f"{image.name}.log"
    log.write_text("")
    _run(
        buildah(
            *("build", "--isolation", "chroot", "--pull=never", "--format", "oci"),
            *("--file", str(image.dockerfile), "--build-arg", f"BASE={base}", "--tag", image.reference),
            *build_volumes(),
            str(REPO),
        ),
        log,
    )
    archive = archive_path(image, key)
    partial = archive.with_name(f".{archive.name}.partial")
    partial.unlink(missing_ok=True)
    _run(buildah("push", image.reference, f"oci-archive:{partial}:{image.reference}"), log)
    built = BuiltImage(image, key, archive, unpacked_size(partial))
    for previous in images_dir().glob(f"{image.name}-*.oci.tar*"):
        previous.unlink()
    _sidecar(archive).write_text(json.dumps({"reference": image.reference, "size": built.size}))
    partial.replace(archive)
    subprocess.run(buildah("rmi", "--prune"), capture_output=True)
    return built


def pack_files(reference: str, files: Mapping[Path, str], archive: Path) -> Path:
    """An image of the stand-in base with `files` (local path -> absolute directory in the image,
    world-readable) added, written as an OCI archive for `ctr import`: a model image (KServe's
    modelcar) for the real node, built without a registry. Needs the base (`ensure_images`)."""
    log = archive.with_suffix(".log")
    with _locked():
        container = _run(buildah("from", "--pull=never", base_reference()), log, capture=True)
        try:
            for source, directory in files.items():
                _run(buildah("copy", "--chmod", "0644", container, str(source), directory), log)
            _run(buildah("commit", "--format", "oci", container, reference), log)
        finally:
            subprocess.run(buildah("rm", container), capture_output=True)
        _run(buildah("push", reference, f"oci-archive:{archive}:{reference}"), log)
        subprocess.run(buildah("rmi", reference), capture_output=True)
    return archive


@contextmanager
def _locked() -> Iterator[None]:
    """One build at a time per cache: buildah's storage and the archives are shared."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_images() -> list[BuiltImage]:
    """Each image from the cache, or built into it when what goes into it changed (the stand-in base
    first, once). A warm cache hashes the context and returns, running no tool."""
    base = base_reference()
    context = context_digest()
    with _locked():
        wanted = [(image, image_key(image, base, context)) for image in all_images()]
        missing = [(image, key) for image, key in wanted if _cached(image, key) is None]
        if missing:
            check_prerequisites()
            if not _exists(base):
                build_base(base, images_dir() / "base.log")
        for image, key in missing:
            _build(image, key, base)
        return [built for image, key in wanted if (built := _cached(image, key))]
