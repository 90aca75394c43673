"""`--workers N`: N processes share both ports, and /metrics adds up what all of them served."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Trained, running_server
from tests.server.test_observability import samples


def test_two_workers_serve_and_count_together(tmp_path: Path, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[:5].tolist()
    with running_server(tmp_path, sklearn_iris.model_dir, "sklearn", "--workers=2") as server:
        with httpx.Client(base_url=server.url) as http:
            # A fresh connection per request, so both workers get some of them.
            for _ in range(20):
                response = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": rows})
                assert response.json() == {"predictions": sklearn_iris.model.predict(rows).tolist()}
            assert http.get("/v2/health/ready").status_code == 200
        with grpc.insecure_channel(server.grpc_target) as channel:
            assert (
                GrpcClient(channel).call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
            )
        counted = samples(server)[("kubeserve_requests_total", (("model", "iris"), ("protocol", "v1")))]
        assert counted == 20
        started = [entry for entry in server.logs() if entry["message"].startswith("model 'iris' loaded")]
        assert len(started) == 2
