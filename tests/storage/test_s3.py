"""s3:// against an S3 emulator (moto's server mode on 127.0.0.1), not AWS: real HTTP and the real boto3
client, but moto's reimplementation of S3 behind them."""

import json
import socket
from pathlib import Path

import pytest

from kubeserve_storage import StorageError, fetch
from kubeserve_storage.s3 import S3Settings
from tests.storage.conftest import Certificate, S3Server
from tests.storage.model_files import MODEL, tar_gz, tree


def put_model(s3: S3Server, bucket: str = "models") -> None:
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    for name, content in MODEL.items():
        client.put_object(Bucket=bucket, Key=f"sklearn/iris/{name}", Body=content)
    client.put_object(Bucket=bucket, Key="sklearn/iris/", Body=b"")  # a console "folder"
    client.put_object(Bucket=bucket, Key="sklearn/iris2/model.joblib", Body=b"another model")


def test_prefix_fetches_everything_below_it_and_nothing_beside(s3: S3Server, tmp_path: Path) -> None:
    put_model(s3)
    fetch("s3://models/sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL
    fetch("s3://models/sklearn/iris/", tmp_path / "again")
    assert tree(tmp_path / "again") == MODEL


def test_key_names_one_object(s3: S3Server, tmp_path: Path) -> None:
    put_model(s3)
    fetch("s3://models/sklearn/iris/model.joblib", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


def test_one_archive_object_is_unpacked(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="models")
    archive = tar_gz(tmp_path / "model.tar.gz", MODEL)
    s3.client().upload_file(str(archive), "models", "packed/model.tar.gz")
    fetch("s3://models/packed/model.tar.gz", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_endpoint_from_kserve_annotation_variables(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serving.kserve.io/s3-endpoint and s3-usehttps arrive as S3_ENDPOINT (no scheme) and S3_USE_HTTPS."""
    put_model(s3)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("S3_ENDPOINT", s3.endpoint.removeprefix("http://"))
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    fetch("s3://models/sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_tls_endpoint_verified_against_its_ca(
    s3: S3Server,
    s3_tls_endpoint: str,
    self_signed: Certificate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_model(s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_tls_endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(self_signed.cert))
    fetch("s3://models/sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_tls_endpoint_with_an_untrusted_certificate(
    s3: S3Server, s3_tls_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_model(s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_tls_endpoint)
    with pytest.raises(StorageError) as raised:
        fetch("s3://models/sklearn/iris", tmp_path / "dest")
    assert f"TLS to {s3_tls_endpoint} failed" in str(raised.value)
    assert "set AWS_CA_BUNDLE to the endpoint's CA, or S3_VERIFY_SSL=0" in str(raised.value)
    assert not (tmp_path / "dest").exists()


def test_tls_verification_off(
    s3: S3Server, s3_tls_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3_VERIFY_SSL=0 (annotation s3-verifyssl: "0"), with the endpoint as S3_ENDPOINT (s3-endpoint)."""
    put_model(s3)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("S3_ENDPOINT", s3_tls_endpoint.removeprefix("https://"))
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    fetch("s3://models/sklearn/iris", tmp_path / "dest")
    assert tree(tmp_path / "dest") == MODEL


def test_empty_prefix(s3: S3Server, tmp_path: Path) -> None:
    put_model(s3)
    with pytest.raises(StorageError) as raised:
        fetch("s3://models/sklearn/absent", tmp_path / "dest")
    assert "no objects under prefix 'sklearn/absent' of bucket 'models'" in str(raised.value)
    assert not (tmp_path / "dest").exists()


def test_empty_bucket(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="empty")
    with pytest.raises(StorageError, match="bucket 'empty' is empty"):
        fetch("s3://empty", tmp_path / "dest")


def test_missing_bucket(s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"bucket 'absent' does not exist \(HTTP 404\)"):
        fetch("s3://absent/model", tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []


def reader_credentials(s3: S3Server) -> tuple[str, str]:
    """An IAM user that may read bucket `models` and nothing else."""
    iam = s3.iam()
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetObject"],
                "Resource": ["arn:aws:s3:::models", "arn:aws:s3:::models/*"],
            }
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="read-models", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_credentials_are_enforced(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the server checking IAM: the reader gets its bucket, 403 for another, 403 with a wrong key."""
    put_model(s3, "models")
    put_model(s3, "private")
    key_id, secret = reader_credentials(s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    s3.enforce_auth(True)

    fetch("s3://models/sklearn/iris", tmp_path / "allowed")
    assert tree(tmp_path / "allowed") == MODEL

    with pytest.raises(StorageError) as denied:
        fetch("s3://private/sklearn/iris", tmp_path / "denied")
    assert "access denied (HTTP 403, AccessDenied) to bucket 'private'" in str(denied.value)
    assert not (tmp_path / "denied").exists()

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403, SignatureDoesNotMatch\)"):
        fetch("s3://models/sklearn/iris", tmp_path / "wrong-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")
    with pytest.raises(StorageError, match=r"access denied \(HTTP 403, InvalidAccessKeyId\)"):
        fetch("s3://models/sklearn/iris", tmp_path / "unknown-key")


def test_unreachable_endpoint(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StorageError, match=f"cannot reach http://127.0.0.1:{port}"):
        fetch("s3://models/sklearn/iris", tmp_path / "dest")


def test_no_credentials(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no S3 credentials: set AWS_ACCESS_KEY_ID"):
        fetch("s3://models/sklearn/iris", tmp_path / "dest")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, S3Settings(None, None, True, True, False)),
        (
            {"AWS_ENDPOINT_URL": "https://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1"},
            S3Settings("https://minio:9000", "eu-west-1", True, False, False),
        ),
        ({"S3_ENDPOINT": "minio:9000"}, S3Settings("https://minio:9000", None, True, False, False)),
        (
            {"S3_ENDPOINT": "minio:9000", "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "false"},
            S3Settings("http://minio:9000", None, False, False, False),
        ),
        (
            {"AWS_ENDPOINT_URL": "https://a", "S3_ENDPOINT": "b", "AWS_CA_BUNDLE": "/ca.pem"},
            S3Settings("https://a", None, "/ca.pem", False, False),
        ),
        (
            {"S3_VERIFY_SSL": "0", "AWS_CA_BUNDLE": "/ca.pem", "AWS_REGION": "us-west-2"},
            S3Settings(None, "us-west-2", False, True, False),
        ),
        (
            {"S3_ENDPOINT": "ceph", "S3_USER_VIRTUAL_BUCKET": "true", "awsAnonymousCredential": "true"},
            S3Settings("https://ceph", None, True, True, True),
        ),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: S3Settings) -> None:
    assert S3Settings.from_env(env) == expected


def test_a_flag_that_is_not_a_boolean() -> None:
    with pytest.raises(StorageError, match="S3_VERIFY_SSL='maybe' is not a boolean"):
        S3Settings.from_env({"S3_VERIFY_SSL": "maybe"})


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        ("s3://models/models", "models/../../escape.txt"),
        ("s3://models/models/", "models/sub/../../../escape.txt"),
        ("s3://models", "../escape.txt"),
        ("s3://models", "/escape.txt"),
    ],
)
def test_keys_with_parent_segments_are_refused_and_nothing_written(
    s3: S3Server, tmp_path: Path, uri: str, key: str
) -> None:
    """S3 keys may hold `..` literally; where one would land outside the destination, nothing is fetched."""
    client = s3.client()
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="models/model.joblib", Body=b"weights")
    client.put_object(Bucket="models", Key=key, Body=b"gotcha")
    assert key in [o["Key"] for o in client.list_objects_v2(Bucket="models")["Contents"]]
    with pytest.raises(StorageError) as raised:
        fetch(uri, tmp_path / "a" / "b" / "dest")
    assert str(raised.value) == f"object key {key!r} would be written outside the destination; refusing it"
    assert list(tmp_path.rglob("*")) == [tmp_path / "a", tmp_path / "a" / "b"]


def test_a_key_whose_parent_segments_stay_inside_lands_where_it_points(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="models/meta/../model.joblib", Body=b"weights")
    fetch("s3://models/models", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"model.joblib": b"weights"}


@pytest.mark.parametrize(
    "uri", ["s3://models/models/../../escape.txt", "s3://models/..", "s3://models/models/../secret/"]
)
def test_prefix_with_parent_segments_is_refused_before_any_request(
    s3: S3Server, tmp_path: Path, uri: str
) -> None:
    """The store would take `models/../x` literally: the URI is refused before any listing."""
    client = s3.client()
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="models/../../escape.txt", Body=b"gotcha")
    client.put_object(Bucket="models", Key="models/../secret/model.joblib", Body=b"weights")
    s3.enforce_auth(True)  # any request from here on, with the test's credentials, would be refused
    with pytest.raises(
        StorageError, match=r"s3:// path '.*' has a '\.\.' segment; name the model by its full path"
    ):
        fetch(uri, tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []
