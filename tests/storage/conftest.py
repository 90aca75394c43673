"""Servers for the storage initializer's tests: moto's S3 emulator (over HTTP, and over HTTPS with a
self-signed certificate) and a local HTTP(S) file server. moto reimplements the S3 API: the client
speaks real HTTP to it, but where moto and AWS differ, these tests follow moto.

All listen on 127.0.0.1 on a free port, run in threads of the test process, and are stopped by
the fixture that started them.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

# Every variable of the initializer's env contract: cleared for each test, so the machine's own
# AWS or Google settings never leak into a result.
CONTRACT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "S3_ENDPOINT",
    "S3_USE_HTTPS",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "S3_VERIFY_SSL",
    "AWS_CA_BUNDLE",
    "S3_USER_VIRTUAL_BUCKET",
    "awsAnonymousCredential",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
    "SSL_CERT_FILE",
    "HTTPS_VERIFY_SSL",
    "HF_TOKEN",
    "HF_ENDPOINT",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CONTRACT:
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files either: credentials must come from the variables a test sets.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self, key: str = "testing", secret: str = "testing") -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    def iam(self) -> Any:
        return boto3.session.Session().client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def enforce_auth(self, on: bool) -> None:
        """Turn moto's IAM checks on (every request after this one) or off again."""
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0" if on else b"inf").raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset").raise_for_status()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_tls_endpoint(s3_server: S3Server, self_signed: Certificate) -> Iterator[str]:
    """HTTPS in front of the same moto backends as `s3_server` (they are per process), self-signed."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(self_signed.cert, self_signed.key)
    server = make_server(
        "127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True, ssl_context=tls
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The S3 server, emptied after the test, with the initializer's env pointing at it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield s3_server
    s3_server.enforce_auth(False)
    s3_server.reset()


class _Files(SimpleHTTPRequestHandler):
    """Serves a directory; any path with a `forbidden` segment answers 403, a missing file 404.

    `/truncated/<n>` promises n bytes and sends half, then hangs up: a download cut off midway.
    """

    def do_GET(self) -> None:
        segments = self.path.split("?")[0].split("/")
        if "forbidden" in segments:
            self.send_error(403, "Forbidden")
        elif len(segments) == 3 and segments[1] == "truncated":
            size = int(segments[2])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(b"x" * (size // 2))
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on results, not on access logs."""


@dataclass(frozen=True)
class FileServer:
    root: Path
    url: str


def _serve(root: Path, tls: ssl.SSLContext | None) -> Iterator[FileServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(root)))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield FileServer(root, f"{scheme}://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    yield from _serve(tmp_path_factory.mktemp("served"), None)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, which is also its own CA bundle."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeserve-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def https_server(tmp_path_factory: pytest.TempPathFactory, self_signed: Certificate) -> Iterator[FileServer]:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(self_signed.cert, self_signed.key)
    yield from _serve(tmp_path_factory.mktemp("served-tls"), tls)
