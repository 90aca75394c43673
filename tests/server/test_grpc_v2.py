"""gRPC v2 (`inference.GRPCInferenceService`) against the same real server as the REST tests."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Trained


def infer_request(features: np.ndarray, **extra: object) -> pb.ModelInferRequest:  # type: ignore[type-arg]
    request = pb.ModelInferRequest(model_name="iris", **extra)  # type: ignore[arg-type]
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(features.shape))
    tensor.contents.fp64_contents.extend(features.ravel().tolist())
    return request


def test_health_and_metadata(grpc_client: GrpcClient) -> None:
    assert grpc_client.call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live
    assert grpc_client.call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
    assert grpc_client.call("ModelReady", pb.ModelReadyRequest(name="iris"), pb.ModelReadyResponse).ready
    server = grpc_client.call("ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse)
    assert server.name == "kubeserve" and list(server.extensions) == ["binary_tensor_data"]
    model = grpc_client.call("ModelMetadata", pb.ModelMetadataRequest(name="iris"), pb.ModelMetadataResponse)
    assert model.platform == "sklearn"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input-0", "FP64", [-1, 4])]
    assert [t.name for t in model.outputs] == ["predict", "predict_proba"]


def test_infer_typed_contents_matches_predict(grpc_client: GrpcClient, sklearn_iris: Trained) -> None:
    request = infer_request(sklearn_iris.features, id="g-1")
    request.parameters["tag"].string_param = "x"
    response = grpc_client.infer(request)
    assert response.model_name == "iris" and response.id == "g-1"
    [output] = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("predict", "INT64", [150])
    assert list(output.contents.int64_contents) == sklearn_iris.model.predict(sklearn_iris.features).tolist()


def test_infer_raw_contents_and_requested_outputs(grpc_client: GrpcClient, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[::10].astype(np.float32)
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f4").tobytes())
    wanted = request.outputs.add(name="predict_proba")
    wanted.parameters["echo"].int64_param = 7
    response = grpc_client.infer(request)
    [output] = response.outputs
    assert output.name == "predict_proba" and list(output.shape) == [15, 3]
    assert output.parameters["echo"].int64_param == 7
    probabilities = np.frombuffer(response.raw_output_contents[0], dtype="<f8").reshape(15, 3)
    np.testing.assert_allclose(probabilities, sklearn_iris.model.predict_proba(rows), rtol=1e-12)


@pytest.mark.parametrize(
    ("mutate", "code", "fragment"),
    [
        (lambda r: setattr(r, "model_name", "nope"), grpc.StatusCode.NOT_FOUND, "model 'nope' not found"),
        (lambda r: setattr(r, "model_version", "9"), grpc.StatusCode.NOT_FOUND, "no version '9'"),
        (lambda r: r.inputs[0].shape.__setitem__(1, 5), grpc.StatusCode.INVALID_ARGUMENT, "needs 20"),
        (
            lambda r: setattr(r.inputs[0], "datatype", "FP99"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown datatype",
        ),
        (
            lambda r: setattr(r.inputs[0], "datatype", "FP16"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "raw_input_contents",
        ),
        (lambda r: r.outputs.add(name="nope"), grpc.StatusCode.INVALID_ARGUMENT, "no output 'nope'"),
    ],
)
def test_bad_requests_get_a_status_that_says_why(
    grpc_client: GrpcClient, sklearn_iris: Trained, mutate: object, code: grpc.StatusCode, fragment: str
) -> None:
    request = infer_request(sklearn_iris.features[:4])
    mutate(request)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as raised:
        grpc_client.infer(request)
    assert raised.value.code() == code  # type: ignore[attr-defined]
    assert fragment in raised.value.details()  # type: ignore[attr-defined]
    assert grpc_client.call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live


def test_oversized_message_is_refused(grpc_client: GrpcClient) -> None:
    request = infer_request(np.zeros((10_000, 4)))
    with pytest.raises(grpc.RpcError) as raised:
        grpc_client.infer(request)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_malformed_message_is_invalid_argument(grpc_client: GrpcClient) -> None:
    """ModelInfer parses its own message: bytes that are no ModelInferRequest are the client's fault."""
    infer = grpc_client.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as raised:
        infer(b"\xff\xff\xff", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a valid protobuf message" in raised.value.details()  # type: ignore[attr-defined]
