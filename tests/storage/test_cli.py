"""The command the init container runs: exit status and the one line a person reads in the pod's log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.storage.conftest import FileServer, S3Server
from tests.storage.model_files import tar_gz, tree

COMMAND = Path(sys.executable).parent / "kubeserve-storage"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | (env or {}),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "usage: kubeserve-storage [-h] uri [dest]" in result.stdout
    assert "/mnt/models" in result.stdout
    # The env contract, for someone with only the image at hand.
    for variable in (
        "AWS_ENDPOINT_URL",
        "S3_VERIFY_SSL",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTPS_VERIFY_SSL",
        "HF_TOKEN",
        "HF_ENDPOINT",
    ):
        assert variable in result.stdout


def test_success(http_server: FileServer, tmp_path: Path) -> None:
    tar_gz(http_server.root / "model.tar.gz", {"model.joblib": b"weights"})
    uri = f"{http_server.url}/model.tar.gz"
    result = run(uri, str(tmp_path / "models"))
    assert result.returncode == 0, result.stderr
    assert f"kubeserve-storage: {uri} is ready in {tmp_path / 'models'}" in result.stderr
    assert tree(tmp_path / "models") == {"model.joblib": b"weights"}


def test_pvc_exits_zero_and_says_why(tmp_path: Path) -> None:
    result = run("pvc://claim/models/iris", str(tmp_path / "models"))
    assert result.returncode == 0
    assert "pvc://claim/models/iris: the operator mounts claim 'claim'" in result.stderr
    assert "nothing to download" in result.stderr


@pytest.mark.parametrize(
    ("path", "says"),
    [("forbidden/model.joblib", "access denied (HTTP 403)"), ("absent/model.joblib", "not found (HTTP 404)")],
)
def test_http_errors(http_server: FileServer, tmp_path: Path, path: str, says: str) -> None:
    uri = f"{http_server.url}/{path}"
    result = run(uri, str(tmp_path / "models"))
    assert result.returncode == 1
    assert f"kubeserve-storage: error: cannot fetch {uri}: {says}" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_scheme_lists_the_allowed_ones(tmp_path: Path) -> None:
    result = run("ftp://host/model", str(tmp_path / "models"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "kubeserve-storage: error: cannot fetch ftp://host/model: unsupported scheme 'ftp://'; "
        "use s3://, gs://, https://, http://, hf://, pvc://, file:// or a local path"
    )


def test_s3_empty_prefix(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="models")
    s3.client().put_object(Bucket="models", Key="other/model.joblib", Body=b"w")
    result = run("s3://models/iris", str(tmp_path / "models"))
    assert result.returncode == 1
    assert "cannot fetch s3://models/iris: no objects under prefix 'iris' of bucket 'models'" in result.stderr
    assert not (tmp_path / "models").exists()


def test_escaping_archive(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "evil.tgz", {"../../etc/cron.d/x": b"gotcha"})
    result = run(str(archive), str(tmp_path / "models"))
    assert result.returncode == 1
    assert "archive member '../../etc/cron.d/x' would be written outside the destination" in result.stderr
    assert not (tmp_path / "models").exists()


def test_usage_error_exits_two() -> None:
    result = run()
    assert result.returncode == 2
    assert "the following arguments are required: uri" in result.stderr
