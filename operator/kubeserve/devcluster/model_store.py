"""The dev cluster's model store: example models trained here and served over plain HTTP on the real
node's address, so that pods fetch them with no internet (`examples/sklearn-iris-local.yaml`).

The models are trained on first use (about two seconds) rather than shipped as pickles, and the node
suite uploads the same ones, by the same keys, to its S3 store: one definition of what the examples
serve. Their libraries (scikit-learn, XGBoost) come with the dev extras and are imported only here.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from kubeserve.devcluster import addresses

PORT = 8000
URL = f"http://{addresses.NODE_IP}:{PORT}"
SKLEARN_IRIS = "sklearn/iris/model.joblib"
XGBOOST_IRIS = "xgboost/iris/model.json"
PATHS = (SKLEARN_IRIS, XGBOOST_IRIS)


def iris_models() -> dict[str, Any]:
    """The example models by their path in a store: a scikit-learn classifier and an XGBoost regressor
    of the iris data set."""
    import xgboost
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return {
        SKLEARN_IRIS: LogisticRegression(max_iter=500).fit(features, labels),
        XGBOOST_IRIS: xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(features, labels),
    }


def serialised(model: Any) -> bytes:
    """A model as its server loads it: XGBoost's own JSON, anything else by joblib."""
    import joblib
    import xgboost

    if isinstance(model, xgboost.XGBModel):
        return bytes(model.get_booster().save_raw("json"))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def fill(root: Path) -> None:
    """Write the example models under `root` unless they are there."""
    if all((root / path).is_file() for path in PATHS):
        return
    for path, model in iris_models().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(serialised(model))
        partial.replace(target)


def server_command(root: Path) -> tuple[str, list[str]]:
    """The store's HTTP server, as a binary and its arguments: Python's own, bound to the node's
    address (pods reach it; nothing outside the machine does)."""
    arguments = ["-m", "http.server", str(PORT), "--bind", addresses.NODE_IP, "--directory", str(root)]
    return sys.executable, arguments
