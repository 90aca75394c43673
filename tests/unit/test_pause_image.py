"""The locally built sandbox image: an OCI archive containerd can import, holding a static /pause."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kubeserve.devcluster import pause

PT_INTERP = 3


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: _read(tar, m) for m in tar.getmembers() if m.isfile()}


def _blob(files: dict[str, bytes], descriptor: dict[str, Any]) -> bytes:
    data = files["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
    assert "sha256:" + hashlib.sha256(data).hexdigest() == descriptor["digest"]
    assert len(data) == descriptor["size"]
    return data


def _program_header_types(elf: bytes) -> list[int]:
    assert elf[:4] == b"\x7fELF"
    assert elf[4] == 2, "64-bit"
    assert elf[5] == 1, "little-endian"
    phoff, phentsize, phnum = struct.unpack_from("<Q", elf, 0x20)[0], *struct.unpack_from("<HH", elf, 0x36)
    return [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]


def test_archive_is_reproducible() -> None:
    assert pause.image_archive(b"binary") == pause.image_archive(b"binary")


def test_index_names_the_image_for_oci_and_containerd() -> None:
    files = _members(pause.image_archive(b"binary"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"] == {
        "org.opencontainers.image.ref.name": pause.PAUSE_IMAGE,
        "io.containerd.image.name": pause.PAUSE_IMAGE,
    }


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to compile the pause binary")
def test_built_archive_is_consistent_and_holds_a_static_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBESERVE_CACHE", str(tmp_path))
    path = pause.ensure_pause_archive()
    assert path.is_relative_to(tmp_path)
    assert pause.ensure_pause_archive() == path
    files = _members(path.read_bytes())

    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(_blob(files, entry))
    config = json.loads(_blob(files, manifest["config"]))
    (layer_descriptor,) = manifest["layers"]
    layer = _blob(files, layer_descriptor)
    assert config["rootfs"]["diff_ids"] == [layer_descriptor["digest"]]
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"] == {"Entrypoint": ["/pause"], "User": "65535:65535"}

    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid, member.gid) == ("pause", 0o755, 0, 0)
        binary = _read(tar, member)
    assert PT_INTERP not in _program_header_types(binary)
