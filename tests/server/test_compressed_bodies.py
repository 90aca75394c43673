"""Request bodies with `Content-Encoding`: gzip and deflate are inflated, with the size limit applied
to the inflated body (a zip bomb gets 413); any other coding gets 415 naming it."""

from __future__ import annotations

import gzip
import zlib

import httpx
import orjson
import pytest

from tests.server.conftest import Trained

ROWS = [[6.3, 3.3, 6.0, 2.5], [5.0, 3.6, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5]]
V2_BODY = orjson.dumps({"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]})
COMPRESS = {"gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress}


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_compressed_bodies_are_inflated(http: httpx.Client, sklearn_iris: Trained, coding: str) -> None:
    expected = sklearn_iris.model.predict(ROWS).tolist()
    headers = {"content-encoding": coding}
    v2 = http.post("/v2/models/iris/infer", content=COMPRESS[coding](V2_BODY), headers=headers)
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == expected
    v1_body = COMPRESS[coding](orjson.dumps({"instances": ROWS}))
    v1 = http.post("/v1/models/iris:predict", content=v1_body, headers=headers)
    assert v1.json() == {"predictions": expected}


def test_codings_are_undone_last_applied_first(http: httpx.Client, sklearn_iris: Trained) -> None:
    body = gzip.compress(zlib.compress(V2_BODY))
    response = http.post("/v2/models/iris/infer", content=body, headers={"content-encoding": "deflate, gzip"})
    assert response.json()["outputs"][0]["data"] == sklearn_iris.model.predict(ROWS).tolist()


def test_a_zip_bomb_gets_413(http: httpx.Client) -> None:
    """10 MB of spaces compress to 10 kB, far under the 200000-byte limit; inflated they are over it."""
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 200_000
    response = http.post("/v2/models/iris/infer", content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["error"] == "body inflates (gzip) to over the limit of 200000 bytes"


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, compress"])
def test_other_codings_get_415_naming_them(http: httpx.Client, coding: str) -> None:
    response = http.post("/v2/models/iris/infer", content=V2_BODY, headers={"content-encoding": coding})
    assert response.status_code == 415
    assert coding.rsplit(", ", 1)[-1] in response.json()["error"]
    assert "send gzip, deflate or identity" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (V2_BODY, "body is not valid gzip data"),
        (gzip.compress(V2_BODY)[:-12], "body is not one complete gzip stream"),
        (gzip.compress(V2_BODY) + b"trailing", "body is not one complete gzip stream"),
    ],
)
def test_broken_gzip_is_refused_with_a_reason(http: httpx.Client, body: bytes, fragment: str) -> None:
    response = http.post("/v2/models/iris/infer", content=body, headers={"content-encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(fragment)


def test_identity_is_no_coding(http: httpx.Client) -> None:
    response = http.post("/v2/models/iris/infer", content=V2_BODY, headers={"content-encoding": "identity"})
    assert response.status_code == 200
