"""Clients nobody here wrote against the server: NVIDIA's tritonclient (HTTP and gRPC) and KServe's
SDK (its REST client in v1 and v2, its gRPC client). Health, metadata, JSON and binary tensors,
requested outputs, and their errors for a wrong datatype, a wrong shape and an unknown model. Answers
are compared with the model's own `predict`. (Numeric datatypes other than the model's are accepted
and cast, so the wrong datatype here is BYTES.)

tritonclient's HTTP client runs here; the gRPC client and KServe's SDK each run in a child process
(foreign_clients.py says why), and the tests assert on what they print.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.server.conftest import Server, Trained

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(iris_server: Server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{iris_server.http_port}")
    yield client
    client.close()


def features_input(rows: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.astype(np.float64), binary_data=binary)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    server = client.get_server_metadata()
    assert server["name"] == "kubeserve" and "binary_tensor_data" in server["extensions"]
    model = client.get_model_metadata("iris")
    assert model["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_model_predict(
    client: triton.InferenceServerClient, sklearn_iris: Trained, binary: bool
) -> None:
    rows = sklearn_iris.features[::10]
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("iris", [features_input(rows, binary)], outputs=outputs, request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), sklearn_iris.model.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), sklearn_iris.model.predict_proba(rows))


def test_requested_output_only(client: triton.InferenceServerClient, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[:5]
    outputs = [triton.InferRequestedOutput("predict_proba", binary_data=True)]
    result = client.infer("iris", [features_input(rows, True)], outputs=outputs)
    assert [output["name"] for output in result.get_response()["outputs"]] == ["predict_proba"]
    assert result.as_numpy("predict") is None
    np.testing.assert_allclose(result.as_numpy("predict_proba"), sklearn_iris.model.predict_proba(rows))


def test_compressed_request(client: triton.InferenceServerClient, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[:5]
    for algorithm in ("gzip", "deflate"):
        result = client.infer("iris", [features_input(rows, True)], request_compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("predict"), sklearn_iris.model.predict(rows))


def test_wrong_datatype_shape_and_model_are_refused(client: triton.InferenceServerClient) -> None:
    wrong_type = triton.InferInput("input-0", [1, 4], "BYTES")
    wrong_type.set_data_from_numpy(np.array([[b"a", b"b", b"c", b"d"]], dtype=object))
    with pytest.raises(InferenceServerException, match="datatype BYTES, model expects FP64") as error:
        client.infer("iris", [wrong_type])
    assert error.value.status() == "400"
    with pytest.raises(InferenceServerException, match=r"model expects \[-1, 4\]"):
        client.infer("iris", [features_input(np.ones((2, 3)), True)])
    with pytest.raises(InferenceServerException, match="model 'rose' not found") as error:
        client.infer("rose", [features_input(np.ones((1, 4)), True)])
    assert error.value.status() == "404"


def foreign_answers(client: str, server: Server, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Run one client's calls in a child process (foreign_clients.py) and return what it printed."""
    given = {"http_url": server.url, "grpc_target": server.grpc_target, "rows": rows.tolist()}
    done = subprocess.run(
        [sys.executable, "-m", "tests.server.foreign_clients", client],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers: dict[str, Any] = json.loads(done.stdout)
    return answers


@pytest.fixture(scope="module")
def rows(sklearn_iris: Trained) -> np.ndarray[Any, Any]:
    return sklearn_iris.features[::10]


@pytest.fixture(scope="module")
def triton_grpc(iris_server: Server, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    return foreign_answers("triton-grpc", iris_server, rows)


@pytest.fixture(scope="module")
def kserve_sdk(iris_server: Server, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    return foreign_answers("kserve", iris_server, rows)


def assert_predicts(answered: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any]) -> None:
    np.testing.assert_array_equal(answered["predict"], sklearn_iris.model.predict(rows))
    np.testing.assert_allclose(answered["predict_proba"], sklearn_iris.model.predict_proba(rows))


REASONS = {
    "wrong_datatype": "datatype BYTES, model expects FP64",
    "wrong_shape": "model expects [-1, 4]",
    "unknown_model": "model 'rose' not found",
}


def assert_refusals(answers: dict[str, Any], invalid: object, not_found: object, calls: list[str]) -> None:
    """Each refused call: the status the client reports, and the server's reason in its message."""
    for call in calls:
        refusal = answers[call]
        assert refusal["status"] == (not_found if call == "unknown_model" else invalid), refusal
        assert REASONS[call] in refusal["message"], refusal


def test_triton_grpc_health_and_metadata(triton_grpc: dict[str, Any]) -> None:
    assert triton_grpc["health"] == [True, True, True]
    server = triton_grpc["server_metadata"]
    assert server["name"] == "kubeserve" and server["extensions"] == ["binary_tensor_data"]
    # Protobuf's JSON writes int64 as strings.
    assert triton_grpc["model_metadata"]["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}
    ]


def test_triton_grpc_infer_matches_model_predict(
    triton_grpc: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any]
) -> None:
    assert triton_grpc["infer"]["id"] == "g-1"
    assert_predicts(triton_grpc["infer"], sklearn_iris, rows)
    only = triton_grpc["requested_only"]
    assert only["names"] == ["predict_proba"]
    np.testing.assert_allclose(only["predict_proba"], sklearn_iris.model.predict_proba(rows))


def test_triton_grpc_refusals(triton_grpc: dict[str, Any]) -> None:
    assert_refusals(triton_grpc, "StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND", list(REASONS))


@pytest.mark.parametrize("body", ["json", "binary"])
def test_kserve_rest_v2_infer_matches_model_predict(
    kserve_sdk: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any], body: str
) -> None:
    answered = kserve_sdk["rest_v2"][body]
    assert answered["id"] == "k-1"
    assert_predicts(answered, sklearn_iris, rows)


def test_kserve_rest_v2_health_requested_outputs_and_refusals(
    kserve_sdk: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any]
) -> None:
    v2 = kserve_sdk["rest_v2"]
    assert v2["health"] == [True, True, True]
    assert list(v2["requested_only"]) == ["predict_proba"]
    np.testing.assert_allclose(v2["requested_only"]["predict_proba"], sklearn_iris.model.predict_proba(rows))
    assert_refusals(v2, 400, 404, list(REASONS))


def test_kserve_rest_v1(
    kserve_sdk: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any]
) -> None:
    v1 = kserve_sdk["rest_v1"]
    assert v1["health"] == [True, True]
    assert v1["predict"] == {"predictions": sklearn_iris.model.predict(rows).tolist()}
    assert_refusals(v1, 400, 404, ["wrong_shape", "unknown_model"])


def test_kserve_grpc(kserve_sdk: dict[str, Any], sklearn_iris: Trained, rows: np.ndarray[Any, Any]) -> None:
    over_grpc = kserve_sdk["grpc"]
    assert over_grpc["health"] == [True, True, True]
    assert over_grpc["infer"]["id"] == "k-1"
    assert_predicts(over_grpc["infer"], sklearn_iris, rows)
    assert list(over_grpc["requested_only"]) == ["predict_proba"]
    np.testing.assert_allclose(
        over_grpc["requested_only"]["predict_proba"], sklearn_iris.model.predict_proba(rows)
    )
    assert_refusals(over_grpc, "INVALID_ARGUMENT", "NOT_FOUND", list(REASONS))
