"""The v1 protocol: `instances` or `inputs` in, `predictions` out, as KServe's v1 clients expect."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import Trained


def test_server_liveness_in_kserve_v1_shape(http: httpx.Client) -> None:
    """KServe's v1 client (`is_server_live`) reads `status` from `GET /`."""
    response = http.get("/")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_model_status_and_listing(http: httpx.Client) -> None:
    assert http.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    assert http.get("/v1/models").json() == {"models": ["iris"]}
    assert http.get("/v1/models/other").status_code == 404


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_matches_model_predict(http: httpx.Client, sklearn_iris: Trained, key: str) -> None:
    rows = sklearn_iris.features[::3]
    response = http.post("/v1/models/iris:predict", json={key: rows.tolist()})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": sklearn_iris.model.predict(rows).tolist()}


def test_integer_instances_are_accepted(http: httpx.Client, sklearn_iris: Trained) -> None:
    rows = [[6, 3, 5, 2], [5, 3, 1, 0]]
    response = http.post("/v1/models/iris:predict", json={"instances": rows})
    assert response.json() == {"predictions": sklearn_iris.model.predict(rows).tolist()}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"instances": [[1, 2, 3]]}, 400, "has shape [1, 3], model expects [-1, 4]"),
        ({"instances": [[1, 2, 3, 4], [1, 2]]}, 400, "not a regular array"),
        ({"instances": []}, 400, "non-empty list"),
        ({"rows": [[1, 2, 3, 4]]}, 400, "non-empty list"),
        ({"instances": [["a", "b", "c", "d"]]}, 400, "datatype BYTES, model expects FP64"),
        ({"instances": [[{"a": 1}, 2, 3, 4]]}, 400, "numbers, booleans or strings"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(
    http: httpx.Client, body: object, status: int, fragment: str
) -> None:
    response = http.post("/v1/models/iris:predict", json=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]
