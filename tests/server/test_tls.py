"""TLS on both listeners from certificate files, and client certificates when a client CA is given."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
import httpx
import pytest
import trustme

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Trained, running_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_files(ca: trustme.CA, directory: Path) -> list[str]:
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    certificate.private_key_pem.write_to_path(str(directory / "tls.key"))
    certificate.cert_chain_pems[0].write_to_path(str(directory / "tls.crt"))
    return [f"--tls_cert_file={directory / 'tls.crt'}", f"--tls_key_file={directory / 'tls.key'}"]


def _context(ca: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


ROWS = [[5.9, 3.0, 5.1, 1.8]]


def test_tls_on_rest_and_grpc(tmp_path: Path, ca: trustme.CA, sklearn_iris: Trained) -> None:
    with (
        running_server(
            tmp_path, sklearn_iris.model_dir, "sklearn", *_server_files(ca, tmp_path), verify=_context(ca)
        ) as server,
        httpx.Client(verify=_context(ca)) as https,
    ):
        assert server.url.startswith("https://")
        answer = https.post(f"{server.url}/v1/models/iris:predict", json={"instances": ROWS})
        assert answer.json() == {"predictions": sklearn_iris.model.predict(ROWS).tolist()}
        with httpx.Client() as plain, pytest.raises(httpx.TransportError):
            plain.get(f"http://127.0.0.1:{server.http_port}/v2/health/live")
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        with grpc.secure_channel(server.grpc_target, credentials) as channel:
            assert (
                GrpcClient(channel).call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
            )
        with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError):
            GrpcClient(channel).call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse, timeout=2)
    # Refused handshakes included, every line the server wrote is JSON.
    assert server.logs()


def test_client_certificates_required_with_a_client_ca(
    tmp_path: Path, ca: trustme.CA, sklearn_iris: Trained
) -> None:
    client_ca = trustme.CA()
    client_ca.cert_pem.write_to_path(str(tmp_path / "clients.pem"))
    client_cert = client_ca.issue_cert("client@example.test")
    args = [*_server_files(ca, tmp_path), f"--tls_client_ca_file={tmp_path / 'clients.pem'}"]
    with (
        running_server(
            tmp_path, sklearn_iris.model_dir, "sklearn", *args, verify=_context(ca, client_cert)
        ) as server,
        httpx.Client(verify=_context(ca, client_cert)) as mutual,
    ):
        assert mutual.get(f"{server.url}/v2/models/iris/ready").json()["ready"] is True
        with httpx.Client(verify=_context(ca)) as anonymous, pytest.raises(httpx.TransportError):
            anonymous.get(f"{server.url}/v2/health/live")
        key = client_cert.private_key_pem.bytes()
        chain = client_cert.cert_chain_pems[0].bytes()
        credentials = grpc.ssl_channel_credentials(ca.cert_pem.bytes(), key, chain)
        with grpc.secure_channel(server.grpc_target, credentials) as channel:
            assert GrpcClient(channel).call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live
        anonymous_credentials = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
        with (
            grpc.secure_channel(server.grpc_target, anonymous_credentials) as channel,
            pytest.raises(grpc.RpcError),
        ):
            GrpcClient(channel).call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse, timeout=2)
