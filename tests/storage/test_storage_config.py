"""KServe's storage-config entries (STORAGE_CONFIG, STORAGE_OVERRIDE_CONFIG) against the S3 emulator:
the entry alone says where the bucket is and how to sign, as the pod's secretKeyRef delivers it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeserve_storage import StorageError, fetch
from tests.storage.conftest import S3Server
from tests.storage.model_files import MODEL, tree
from tests.storage.test_cli import run
from tests.storage.test_s3 import put_model, reader_credentials

PLACEHOLDER = "<scheme-placeholder>://"


@pytest.fixture
def bare_s3(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The emulator, with nothing about it in the environment: only the storage-config entry knows it."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    return s3


def entry(s3: S3Server, key_id: str = "testing", secret: str = "testing", **more: Any) -> str:
    """A storage-config entry as KServe documents it."""
    settings = {
        "type": "s3",
        "access_key_id": key_id,
        "secret_access_key": secret,
        "endpoint_url": s3.endpoint,
        "bucket": "models",
        "region": "us-east-1",
        **more,
    }
    return json.dumps(settings)


def test_the_entry_names_the_bucket_and_signs_the_requests(
    bare_s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_model(bare_s3, "models")
    put_model(bare_s3, "private")
    key_id, secret = reader_credentials(bare_s3)
    bare_s3.enforce_auth(True)
    monkeypatch.setenv("STORAGE_CONFIG", entry(bare_s3, key_id, secret))
    fetch(f"{PLACEHOLDER}sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL
    # The reader may not read `private`: the entry's keys, not some default, signed the requests.
    monkeypatch.setenv("STORAGE_OVERRIDE_CONFIG", json.dumps({"bucket": "private"}))
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403, AccessDenied\) to bucket 'private'"):
        fetch(f"{PLACEHOLDER}sklearn/iris", tmp_path / "denied")


def test_the_entry_wins_over_the_environment(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_model(s3)
    key_id, secret = reader_credentials(s3)
    s3.enforce_auth(True)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("STORAGE_CONFIG", entry(s3, key_id, secret))
    fetch("s3://models/sklearn/iris", tmp_path / "dest")  # storage with an s3:// storageUri
    assert tree(tmp_path / "dest") == MODEL


def test_parameters_complete_an_entry_without_bucket(
    bare_s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_model(bare_s3, "team-models")
    settings = json.loads(entry(bare_s3))
    del settings["bucket"], settings["type"]
    monkeypatch.setenv("STORAGE_CONFIG", json.dumps(settings))
    monkeypatch.setenv("STORAGE_OVERRIDE_CONFIG", json.dumps({"type": "s3", "bucket": "team-models"}))
    fetch(f"{PLACEHOLDER}sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_an_entry_of_scalars_that_are_not_strings(
    bare_s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_model(bare_s3)
    monkeypatch.setenv("STORAGE_CONFIG", entry(bare_s3, verify_ssl=False, anonymous=0))
    fetch(f"{PLACEHOLDER}sklearn/iris/model.joblib", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        (None, None, "storage.path needs a storage-config entry, and there is none"),
        ('{"type": "hdfs", "bucket": "models"}', None, "entry's type is 'hdfs'"),
        ('{"bucket": "models"}', None, "entry's type is None"),
        ('{"type": "s3"}', None, "names no usable bucket ('')"),
        ('{"type": "s3", "bucket": "a/b"}', None, "names no usable bucket ('a/b')"),
        ('{"type": "s3", "bucket": "models"}', '{"bucket": ""}', "names no usable bucket"),
        ('{"type": "s3", "secret_access_key": "hunter2"', None, "STORAGE_CONFIG is not valid JSON"),
        ('["s3"]', None, "STORAGE_CONFIG must be a JSON object of settings, not list"),
        ('{"type": "s3", "bucket": "models"}', '{"region": null}', "setting 'region' must be a string"),
    ],
)
def test_an_unusable_entry_is_refused_before_any_request(
    bare_s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: str | None,
    override: str | None,
    message: str,
) -> None:
    bare_s3.enforce_auth(True)  # any request would be refused: the error must come first
    for name, value in (("STORAGE_CONFIG", config), ("STORAGE_OVERRIDE_CONFIG", override)):
        if value is not None:
            monkeypatch.setenv(name, value)
    with pytest.raises(StorageError) as raised:
        fetch(f"{PLACEHOLDER}sklearn/iris", tmp_path / "dest")
    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["sklearn/../../etc", "../x", "a/.."])
def test_a_path_that_climbs_is_refused(
    bare_s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("STORAGE_CONFIG", entry(bare_s3))
    bare_s3.enforce_auth(True)
    with pytest.raises(StorageError, match=r"has a '\.\.' segment"):
        fetch(f"{PLACEHOLDER}{path}", tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []


def test_the_command_fetches_pairs_for_storage_uris(s3: S3Server, tmp_path: Path) -> None:
    """storageUris: `uri dest uri dest`, both under the directory the download volume is mounted at."""
    put_model(s3)
    root = tmp_path / "mnt" / "models"
    root.mkdir(parents=True)
    result = run(
        "s3://models/sklearn/iris",
        str(root / "base"),
        "s3://models/sklearn/iris2",
        str(root / "adapters"),
    )
    assert result.returncode == 0, result.stderr
    assert tree(root) == {
        **{f"base/{name}": content for name, content in MODEL.items()},
        "adapters/model.joblib": b"another model",
    }
    assert f"s3://models/sklearn/iris2 is ready in {root / 'adapters'}" in result.stderr


def test_the_command_refuses_a_uri_without_its_destination(tmp_path: Path) -> None:
    result = run("s3://b/a", str(tmp_path / "a"), "s3://b/b")
    assert result.returncode == 2
    assert "s3://b/b has no destination" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_command_stops_at_the_first_failure_naming_its_uri(s3: S3Server, tmp_path: Path) -> None:
    put_model(s3)
    result = run("s3://models/sklearn/iris", str(tmp_path / "a"), "s3://models/missing", str(tmp_path / "b"))
    assert result.returncode == 1
    assert "cannot fetch s3://models/missing: no objects under prefix 'missing'" in result.stderr
    assert tree(tmp_path / "a") == MODEL
    assert not (tmp_path / "b").exists()


def test_the_command_resolves_the_placeholder_as_the_pod_runs_it(bare_s3: S3Server, tmp_path: Path) -> None:
    """The init container's own invocation: the placeholder URI, the entry in STORAGE_CONFIG."""
    put_model(bare_s3)
    result = run(
        f"{PLACEHOLDER}sklearn/iris",
        str(tmp_path / "models"),
        env={"STORAGE_CONFIG": entry(bare_s3, secret="s3cr3t-value")},
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"{PLACEHOLDER}sklearn/iris is s3://models/sklearn/iris, from the storage-config entry"
        in result.stderr
    )
    assert tree(tmp_path / "models") == MODEL
    assert "s3cr3t-value" not in result.stderr  # the entry's keys are never logged


def test_help_documents_the_storage_config_contract() -> None:
    help_text = run("--help").stdout
    for variable in ("STORAGE_CONFIG", "STORAGE_OVERRIDE_CONFIG", "<scheme-placeholder>://<path>"):
        assert variable in help_text
