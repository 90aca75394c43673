"""A model that raises while predicting: the caller gets a JSON 500, the log gets the traceback,
and the server keeps serving."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import grpc
import httpx
import pytest

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, running_server

FAULTY_MODULE = textwrap.dedent(
    """
    from sklearn.dummy import DummyClassifier

    class FaultyClassifier(DummyClassifier):
        def predict(self, X):
            if X[0][0] < 0:
                raise RuntimeError("negative rows break this model")
            return super().predict(X)
    """
)


def test_model_exception_is_a_500_and_the_server_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "faulty_estimator.py").write_text(FAULTY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from faulty_estimator import FaultyClassifier  # type: ignore[import-not-found]

    model_dir = tmp_path / "faulty"
    model_dir.mkdir()
    model = FaultyClassifier(strategy="constant", constant=1).fit([[0.0, 0.0]], [1])
    (model_dir / "model.pkl").write_bytes(pickle.dumps(model))
    sys.modules.pop("faulty_estimator")
    with (
        running_server(tmp_path, model_dir, "sklearn", env={"PYTHONPATH": str(tmp_path)}) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        broken = http.post("/v1/models/faulty:predict", json={"instances": [[-1.0, 0.0]]})
        assert broken.status_code == 500
        assert broken.json() == {"error": "model 'faulty' failed to predict: RuntimeError"}
        with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError) as raised:
            request = pb.ModelInferRequest(model_name="faulty")
            request.inputs.add(name="x", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend(
                [-1.0, 0.0]
            )
            GrpcClient(channel).infer(request)
        assert raised.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
        assert http.post("/v1/models/faulty:predict", json={"instances": [[1.0, 0.0]]}).json() == {
            "predictions": [1]
        }
        [logged, _] = [entry for entry in server.logs() if entry["level"] == "error"]
        assert logged["message"] == "model 'faulty' failed to predict"
        assert "RuntimeError: negative rows break this model" in logged["exception"]
        errors = httpx.get(f"{server.url}/metrics").text
        assert 'kubeserve_request_errors_total{model="faulty",protocol="v1",status="500"} 1.0' in errors
