"""Where each scheme writes what the source names: below the destination, or nowhere.

Object keys (s3://, gs://) and archive members go through one check, `paths.below`; an http(s)://
download is one file named by the URL's last segment; hf:// names are checked by the Hub client
(tests/storage/test_hf.py); a local copy writes only the names its source directory holds.
"""

import os
from pathlib import Path, PurePosixPath
from typing import Literal

import pytest

from kubeserve_storage import StorageError, bucket, fetch
from kubeserve_storage.paths import below
from kubeserve_storage.uri import BucketUri, HttpUri, parse
from tests.storage.model_files import tree


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.joblib", "model.joblib"),
        ("meta/settings.json", "meta/settings.json"),
        ("./meta//settings.json", "meta/settings.json"),
        ("meta/../model.joblib", "model.joblib"),
        ("...", "..."),
        ("..model", "..model"),
        (".", "."),
    ],
)
def test_names_that_stay_below(name: str, expected: str) -> None:
    assert below(name, "x") == PurePosixPath(expected)


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "a/b/../../..", "/etc/passwd", "//host/x"])
def test_names_that_would_land_outside(name: str) -> None:
    with pytest.raises(StorageError) as raised:
        below(name, f"object key {name!r}")
    assert str(raised.value) == f"object key {name!r} would be written outside the destination; refusing it"


@pytest.mark.parametrize("scheme", ["s3", "gs"])
@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ("models", "models/../../escape.txt"),
        ("models/", "models/a/../../../escape.txt"),
        ("", "../escape.txt"),
        ("", "/etc/cron.d/x"),
    ],
)
def test_bucket_keys_that_would_land_outside_are_refused(
    scheme: Literal["s3", "gs"], prefix: str, key: str
) -> None:
    uri = BucketUri(scheme, "b", prefix)
    with pytest.raises(StorageError, match="would be written outside the destination"):
        bucket.plan(uri, ["models/model.joblib", key])


def test_bucket_keys_map_below_the_destination() -> None:
    keys = ["models/model.joblib", "models/meta/../meta.json", "models/meta/./settings.json", "other/x"]
    assert bucket.plan(BucketUri("s3", "b", "models"), keys) == {
        "models/model.joblib": PurePosixPath("model.joblib"),
        "models/meta/../meta.json": PurePosixPath("meta.json"),
        "models/meta/./settings.json": PurePosixPath("meta/settings.json"),
    }


def test_a_key_naming_the_destination_itself_is_refused() -> None:
    with pytest.raises(StorageError, match=r"object key 'models/a/\.\.' names the destination itself"):
        bucket.plan(BucketUri("s3", "b", "models"), ["models/a/.."])


@pytest.mark.parametrize(
    ("url", "filename"),
    [
        ("https://h/a/%2e%2e%2f%2e%2e%2fescape.txt", "escape.txt"),
        ("https://h/models/model.tar.gz?next=../../x", "model.tar.gz"),
        ("https://h/a/..%2fb.onnx", "b.onnx"),
    ],
)
def test_a_url_writes_one_file_named_by_its_last_segment(url: str, filename: str) -> None:
    assert parse(url) == HttpUri(url, filename)


@pytest.mark.parametrize("url", ["https://h/a/..", "https://h/a/%2e%2e", "https://h/.."])
def test_a_url_whose_last_segment_is_a_parent_is_refused(url: str) -> None:
    with pytest.raises(StorageError, match="the URL's path must name a file"):
        parse(url)


def test_a_local_copy_follows_links_but_writes_only_below(tmp_path: Path) -> None:
    """A symlink in the source is copied as its content; nothing is written where it points."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"s")
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.joblib").write_bytes(b"weights")
    os.symlink("../outside", source / "linked")
    fetch(str(source), tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights", "linked/secret.txt": b"s"}
    assert not (tmp_path / "dest" / "linked").is_symlink()
    assert tree(outside) == {"secret.txt": b"s"}
