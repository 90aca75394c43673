"""Each model format, served for real and compared with the model's own predictions on the same rows."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import lightgbm
import numpy as np
import pytest
import xgboost
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

from tests.server.conftest import Trained, running_server

Features = np.ndarray[Any, Any]


def _xgboost(model_dir: Path, features: Features, labels: Features, suffix: str) -> Callable[[Features], Any]:
    booster = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(features, labels).get_booster()
    booster.save_model(model_dir / ("model.ubj" if suffix == "bst" else f"model.{suffix}"))
    if suffix == "bst":  # xgboost 3 writes no legacy binary; a .bst holding UBJSON loads the same way
        shutil.move(model_dir / "model.ubj", model_dir / "model.bst")
    return booster.inplace_predict


def _lightgbm(model_dir: Path, features: Features, labels: Features) -> Callable[[Features], Any]:
    booster = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=4, verbose=-1).fit(features, labels).booster_
    booster.save_model(model_dir / "model.txt")
    return booster.predict  # type: ignore[no-any-return]


def _onnx(model_dir: Path, features: Features, labels: Features) -> Callable[[Features], Any]:
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(features, labels)
    onnx_model = to_onnx(forest, features[:1].astype(np.float32), options={"zipmap": False})
    (model_dir / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return lambda rows: forest.predict_proba(rows.astype(np.float32))


CASES = {
    "xgboost-json": ("xgboost", lambda d, x, y: _xgboost(d, x, y, "json"), "predict"),
    "xgboost-ubj": ("xgboost", lambda d, x, y: _xgboost(d, x, y, "ubj"), "predict"),
    "xgboost-bst": ("xgboost", lambda d, x, y: _xgboost(d, x, y, "bst"), "predict"),
    "lightgbm-txt": ("lightgbm", _lightgbm, "predict"),
    "onnx": ("onnx", _onnx, "probabilities"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_format_serves_its_model(tmp_path: Path, iris_features: tuple[Features, Features], case: str) -> None:
    model_format, train, output_name = CASES[case]
    features, labels = iris_features
    model_dir = tmp_path / "flowers"
    model_dir.mkdir()
    expected = train(model_dir, features, labels)(features)
    with (
        running_server(tmp_path, model_dir, model_format) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        metadata = http.get("/v2/models/flowers").json()
        assert metadata["platform"] == model_format
        assert metadata["inputs"][0]["shape"][-1] == 4
        body = {
            "inputs": [
                {
                    "name": metadata["inputs"][0]["name"],
                    "shape": [150, 4],
                    "datatype": "FP32",
                    "data": features.astype(np.float32).tolist(),
                }
            ],
            "outputs": [{"name": output_name}],
        }
        response = http.post("/v2/models/flowers/infer", json=body)
        assert response.status_code == 200, response.text
        [output] = response.json()["outputs"]
        assert output["shape"] == list(np.shape(expected))
        np.testing.assert_allclose(
            np.reshape(output["data"], output["shape"]), expected, rtol=1e-5, atol=1e-6
        )
        if model_format != "onnx":
            v1 = http.post("/v1/models/flowers:predict", json={"instances": features[:3].tolist()})
            assert v1.status_code == 200, v1.text
            np.testing.assert_allclose(v1.json()["predictions"], expected[:3], rtol=1e-5, atol=1e-6)


def test_sklearn_pickle_file_is_found_in_a_subdirectory(tmp_path: Path, sklearn_iris: Trained) -> None:
    model_dir = tmp_path / "iris"
    (model_dir / "nested").mkdir(parents=True)
    shutil.copy(sklearn_iris.model_dir / "model.joblib", model_dir / "nested" / "estimator.pkl")
    with running_server(tmp_path, model_dir) as server:
        rows = sklearn_iris.features[100:110]
        response = httpx.post(f"{server.url}/v1/models/iris:predict", json={"inputs": rows.tolist()})
        assert response.json() == {"predictions": sklearn_iris.model.predict(rows).tolist()}
