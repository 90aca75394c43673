"""Which URIs the initializer accepts, and what it says about the ones it refuses, before any I/O."""

from pathlib import Path

import pytest

from kubeserve_storage import StorageError
from kubeserve_storage.uri import BucketUri, HfUri, HttpUri, LocalUri, PvcUri, Source, parse


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://models/iris/v1", BucketUri("s3", "models", "iris/v1")),
        ("s3://models", BucketUri("s3", "models", "")),
        ("gs://examples/models/sklearn/1.0/model", BucketUri("gs", "examples", "models/sklearn/1.0/model")),
        ("GS://bucket/x/", BucketUri("gs", "bucket", "x/")),
        ("https://h:8443/model.tar.gz?sig=1", HttpUri("https://h:8443/model.tar.gz?sig=1", "model.tar.gz")),
        ("http://host/my%20model.joblib", HttpUri("http://host/my%20model.joblib", "my model.joblib")),
        ("pvc://claim/models/iris", PvcUri("claim", "models/iris")),
        ("hf://acme/iris", HfUri("acme/iris", None)),
        ("hf://acme/iris.v2@main", HfUri("acme/iris.v2", "main")),
        ("hf://acme/iris@refs/pr/1", HfUri("acme/iris", "refs/pr/1")),
        ("hf://acme/iris:0123abc", HfUri("acme/iris", "0123abc")),  # KServe's spelling
        ("file:///models/iris", LocalUri(Path("/models/iris"))),
        ("/models/iris", LocalUri(Path("/models/iris"))),
        ("relative/dir", LocalUri(Path("relative/dir"))),
    ],
)
def test_parses(uri: str, expected: Source) -> None:
    assert parse(uri) == expected


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        (
            "ftp://host/model",
            "unsupported scheme 'ftp://'; use s3://, gs://, https://, http://, hf://, pvc://, file://",
        ),
        ("hf://", "'' is not a Hugging Face model id; use hf://<org>/<repo>[@<revision>]"),
        ("hf://acme", "'acme' is not a Hugging Face model id"),
        ("hf://acme/iris/extra", "'acme/iris/extra' is not a Hugging Face model id"),
        ("hf://acme/../etc", "'acme/../etc' is not a Hugging Face model id"),
        ("hf://acme/iris@", "nothing after '@': name a branch, tag or commit"),
        ("hf://acme/iris:", "nothing after ':'"),
        ("s3://", "s3:// needs a bucket"),
        ("s3:///key", "s3:// needs a bucket"),
        ("gs://", "gs:// needs a bucket"),
        ("https://", "https:// needs a host"),
        ("https://host/", "must name a file"),
        ("https://host", "must name a file"),
        ("pvc://", "pvc:// needs a claim name"),
        ("s3://b/../../etc", "s3:// path '../../etc' has a '..' segment; name the model by its full path"),
        ("gs://b/models/../secret", "gs:// path 'models/../secret' has a '..' segment"),
        ("s3://b/models/..", "s3:// path 'models/..' has a '..' segment"),
        (
            "pvc://claim/../other",
            "pvc:// path '../other' has a '..' segment; name the model by its full path, as in pvc://claim/path/to/model",
        ),
        ("file://otherhost/x", "file:// URIs name a local path"),
        ("", "the URI is empty"),
    ],
)
def test_refuses_with_what_to_do(uri: str, says: str) -> None:
    with pytest.raises(StorageError) as raised:
        parse(uri)
    assert says in str(raised.value)
