"""REST v2 (Open Inference Protocol) against a real server: health, metadata and inference."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from tests.server.conftest import Trained

NUMERIC_DTYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def infer_body(features: np.ndarray[Any, Any], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(features.shape),
                "datatype": datatype,
                "data": features.tolist(),
            }
        ],
        **extra,
    }


def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    metadata = http.get("/v2").json()
    assert metadata["name"] == "kubeserve" and "version" in metadata
    # The binary tensor data extension, by the name Triton reports it under.
    assert metadata["extensions"] == ["binary_tensor_data"]


def test_model_metadata_and_readiness(http: httpx.Client) -> None:
    assert http.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    metadata = http.get("/v2/models/iris").json()
    assert metadata == {
        "name": "iris",
        "versions": [],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
    }


def test_infer_matches_model_predict_on_every_row(http: httpx.Client, sklearn_iris: Trained) -> None:
    features = sklearn_iris.features
    response = http.post("/v2/models/iris/infer", json=infer_body(features, id="batch-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris" and body["id"] == "batch-1"
    [output] = body["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "INT64" and output["shape"] == [150]
    assert output["data"] == sklearn_iris.model.predict(features).tolist()


def test_flat_and_nested_data_are_the_same_tensor(http: httpx.Client, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[:7]
    flat = infer_body(rows)
    flat["inputs"][0]["data"] = rows.ravel().tolist()
    nested = http.post("/v2/models/iris/infer", json=infer_body(rows)).json()
    assert http.post("/v2/models/iris/infer", json=flat).json() == nested


@pytest.mark.parametrize("datatype", list(NUMERIC_DTYPES))
def test_every_numeric_datatype_reaches_the_model(
    http: httpx.Client, sklearn_iris: Trained, datatype: str
) -> None:
    dtype = NUMERIC_DTYPES[datatype]
    values = sklearn_iris.features * 10 if dtype != np.bool_ else sklearn_iris.features > 3
    rows = np.asarray(values[::5]).astype(dtype)
    response = http.post("/v2/models/iris/infer", json=infer_body(rows, datatype))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict(rows).tolist()


def test_requested_outputs_and_parameters(http: httpx.Client, sklearn_iris: Trained) -> None:
    rows = sklearn_iris.features[40:60]
    body = infer_body(
        rows,
        id="with-parameters",
        parameters={"priority": 3, "tag": "x", "sampled": True, "ratio": 0.5},
        outputs=[{"name": "predict_proba", "parameters": {"note": "probabilities"}}, {"name": "predict"}],
    )
    body["inputs"][0]["parameters"] = {"content_type": "np"}
    response = http.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    proba, labels = response.json()["outputs"]
    assert proba["name"] == "predict_proba" and proba["shape"] == [20, 3] and proba["datatype"] == "FP64"
    assert proba["parameters"] == {"note": "probabilities"}
    np.testing.assert_allclose(
        np.reshape(proba["data"], (20, 3)), sklearn_iris.model.predict_proba(rows), rtol=1e-12
    )
    assert labels["data"] == sklearn_iris.model.predict(rows).tolist() and "parameters" not in labels


def test_unversioned_model_has_no_versions(http: httpx.Client, sklearn_iris: Trained) -> None:
    body = infer_body(sklearn_iris.features[:1])
    for path in (
        "/v2/models/iris/versions/1/infer",
        "/v2/models/iris/versions/1",
        "/v2/models/iris/versions/1/ready",
    ):
        response = http.request("POST" if path.endswith("infer") else "GET", path, json=body)
        assert response.status_code == 404, path
        assert "no version '1'" in response.json()["error"]
