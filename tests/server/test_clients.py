"""NVIDIA's tritonclient, a client nobody here wrote, against the server: health, metadata, JSON and
binary tensors, requested outputs, and its errors for a wrong datatype, a wrong shape and an
unknown model. Answers are compared with the model's own `predict`. (Numeric datatypes other than
the model's are accepted and cast, so the wrong datatype here is BYTES.)

Only its HTTP client: its gRPC client and KServe's Python SDK need protobuf below 7, and the
server's generated code needs 7, so they cannot share one environment.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.server.conftest import Server, Trained


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
