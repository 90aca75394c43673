"""The images themselves, built with buildah from a Debian stand-in base (no Docker engine, no registry)
and read back from the OCI archives the real node imports: what they run, as whom, and what they carry.
The first build takes minutes; later runs find the cache and build nothing.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pytest

from kubeserve.devcluster import build, images
from tests.images.test_images import final_stage

pytestmark = pytest.mark.timeout(3600)

SITE_PACKAGES = "opt/kubeserve/lib/python3.11/site-packages"
PYC = ".cpython-311.pyc"
MARKERS = {
    "operator": {"kopf", "jinja2"},
    # Its libraries (aiohttp, prometheus_client, yaml) are all the operator's too (kopf runs on aiohttp):
    # none is its alone, but it must carry none of the others'.
    "activator": set(),
    "storage-initializer": {"boto3", "botocore", "huggingface_hub"},
    # The storage SDKs too: kubeserve-server fetches its own model (its runtime's storageHelper.disabled).
    "model-server": {
        "sklearn",
        "xgboost",
        "lightgbm",
        "onnxruntime",
        "numpy",
        "boto3",
        "botocore",
        "huggingface_hub",
    },
}
"""Top-level packages each image needs; an image carries none that only the others need."""


@pytest.fixture(scope="module")
def built() -> dict[str, images.BuiltImage]:
    try:
        images.check_prerequisites()
    except build.BuildError as error:
        pytest.skip(str(error))
    return {b.image.name: b for b in images.ensure_images()}


@dataclass(frozen=True)
class Contents:
    """What an image's archive holds: its config, the paths in its layers, and the flags of each .pyc file
    of its virtualenv by the source it compiles (PEP 552: 0 checks the source's mtime, 1 is an unchecked
    hash)."""

    config: dict[str, Any]
    paths: set[str]
    bytecode: dict[str, int]


@functools.cache
def read_archive(archive: Path) -> Contents:
    """Read once: the model server's layers take seconds."""
    with tarfile.open(archive) as tar:

        def member(name: str) -> IO[bytes]:
            file = tar.extractfile(name)
            assert file is not None, f"{archive} has no {name}"
            return file

        def blob(descriptor: dict[str, Any]) -> IO[bytes]:
            return member("blobs/" + descriptor["digest"].replace(":", "/"))

        manifest = json.load(blob(json.load(member("index.json"))["manifests"][0]))
        contents = Contents(json.load(blob(manifest["config"])), set(), {})
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob(layer)), mode="r|") as entries:
                for entry in entries:
                    path = PurePosixPath(entry.name)
                    contents.paths.add(path.as_posix())
                    if path.is_relative_to(SITE_PACKAGES) and path.name.endswith(PYC) and entry.isfile():
                        header = entries.extractfile(entry).read(8)  # type: ignore[union-attr]
                        source = path.parent.parent / path.name.replace(PYC, ".py")
                        contents.bytecode[source.as_posix()] = int.from_bytes(header[4:8], "little")
    return contents


def test_the_context_is_what_dockerignore_lets_through() -> None:
    files = {path.as_posix() for path in images.context_files()}
    assert "pyproject.toml" in files
    assert "operator/kubeserve/cli/main.py" in files
    assert "runtime-images/python/kubeserve_server/__main__.py" in files
    assert not {f for f in files if "__pycache__" in f or f.startswith(("tests/", ".git/", ".venv/"))}


@pytest.mark.parametrize("name", list(MARKERS))
def test_runs_its_entrypoint_as_uid_1000(built: dict[str, images.BuiltImage], name: str) -> None:
    image = built[name]
    config = read_archive(image.archive).config
    dockerfile = image.image.dockerfile
    declared = [json.loads(args) for step, args in final_stage(dockerfile) if step == "ENTRYPOINT"]
    assert config["config"]["Entrypoint"] == declared[-1]
    assert config["config"]["User"] == "1000:1000"
    assert image.archive.name == f"{name}-{image.key}.oci.tar"


@pytest.mark.parametrize("name", list(MARKERS))
def test_carries_only_what_it_runs(built: dict[str, images.BuiltImage], name: str) -> None:
    paths = read_archive(built[name].archive).paths
    packages = {
        m.group(1) for path in paths if (m := re.match(rf"{SITE_PACKAGES}/([^/]+)/__init__\.py$", path))
    }
    foreign = set().union(*(markers for other, markers in MARKERS.items() if other != name)) - MARKERS[name]
    assert MARKERS[name] <= packages
    assert not packages & (foreign | {"kubernetes"}), packages & foreign


@pytest.mark.parametrize("name", list(MARKERS))
def test_entrypoint_answers_help_in_the_image(built: dict[str, images.BuiltImage], name: str) -> None:
    """The virtualenv copied from the build stage works in the final one, under the image's own user."""
    config = read_archive(built[name].archive).config
    entrypoint = config["config"]["Entrypoint"]
    container = subprocess.run(
        images.buildah("from", "--pull=never", built[name].image.reference),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        result = subprocess.run(
            images.buildah("run", "--isolation", "chroot", container, "--", *entrypoint, "--help"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run(images.buildah("rm", container), capture_output=True)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout.lower()


@pytest.mark.parametrize("name", list(MARKERS))
def test_every_module_starts_without_compiling(built: dict[str, images.BuiltImage], name: str) -> None:
    """Bytecode checked against its source's mtime went stale in the layers (they keep mtimes a second
    apart from what pip recorded), and then every start compiled its imports again: 1.2 s of the model
    server's 2.6 s. Unchecked-hash bytecode is read as it is."""
    contents = read_archive(built[name].archive)
    sources = {path for path in contents.paths if path.startswith(SITE_PACKAGES) and path.endswith(".py")}
    flags = {source: contents.bytecode.get(source) for source in sources}
    wrong = {source: flag for source, flag in flags.items() if flag != 1}
    assert len(sources) > 100
    assert not wrong, f"{len(wrong)} of {len(sources)} modules, e.g. {sorted(wrong.items())[:5]}"


def test_an_unchanged_tree_builds_nothing(built: dict[str, images.BuiltImage]) -> None:
    base, context = images.base_reference(), images.context_digest()
    if any(images.image_key(image.image, base, context) != image.key for image in built.values()):
        pytest.skip("the sources changed while the tests ran: the keys, content hashes, changed with them")
    before = {name: image.archive.stat() for name, image in built.items()}
    again = {b.image.name: b for b in images.ensure_images()}
    assert again == built
    for name, image in again.items():
        after = image.archive.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
