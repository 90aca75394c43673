"""KServe's model server with a small scikit-learn model class on KServe's public API.

Run by the benchmark with the Python of a virtualenv that has `kserve` installed; it is the same
shape as KServe's own sklearnserver: load with joblib, `predict` on `as_numpy()` of the input.

    python kserve_sklearn.py NAME MODEL_FILE [KServe's ModelServer flags]
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import joblib
import kserve


class SKLearnModel(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.estimator: Any = None

    def load(self) -> bool:
        self.estimator = joblib.load(self.path)
        self.ready = True
        return True

    def predict(
        self, payload: kserve.InferRequest, headers: Any = None, response_headers: Any = None
    ) -> kserve.InferResponse:
        result = self.estimator.predict(payload.inputs[0].as_numpy())
        output = kserve.InferOutput(name="predict", shape=list(result.shape), datatype="INT64")
        output.set_data_from_numpy(result, binary_data=False)
        # KServe's response model needs an id, and a request need not carry one.
        response_id = payload.id or str(uuid.uuid4())
        return kserve.InferResponse(model_name=self.name, infer_outputs=[output], response_id=response_id)


if __name__ == "__main__":
    name, path = sys.argv.pop(1), sys.argv.pop(1)
    model = SKLearnModel(name, path)
    model.load()
    kserve.ModelServer().start([model])
