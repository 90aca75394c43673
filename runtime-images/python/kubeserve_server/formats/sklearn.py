"""scikit-learn estimators saved with joblib or pickle."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np

from kubeserve_server.model import ModelLoadError, TabularModel
from kubeserve_server.protocol import Array, TensorSpec, datatype_of


class SKLearnModel(TabularModel):
    platform = "sklearn"
    suffixes = (".joblib", ".pkl", ".pickle")

    _estimator: Any = None

    def prepare(self) -> None:
        # Unpickling an estimator imports scikit-learn; its package's own import (scipy, the base
        # classes) is most of that time, and the same for every estimator.
        importlib.import_module("sklearn")

    def load(self) -> None:
        path = self.model_file(self.suffixes)
        try:
            estimator = joblib.load(path)
        except Exception as error:  # unpickling garbage raises anything at all, IndexError included
            raise ModelLoadError(
                f"{path} is not a joblib or pickle file that loads here: {type(error).__name__}: {error}"
            ) from error
        if not callable(getattr(estimator, "predict", None)):
            raise ModelLoadError(f"{type(estimator).__name__} loaded from {self.model_dir} has no predict()")
        self._estimator = estimator

    def ready(self) -> bool:
        return self._estimator is not None

    def output_functions(self) -> dict[str, Callable[[Array], Array]]:
        functions: dict[str, Callable[[Array], Array]] = {"predict": self._estimator.predict}
        if hasattr(self._estimator, "predict_proba"):
            functions["predict_proba"] = self._estimator.predict_proba
        return functions

    def inputs(self) -> list[TensorSpec]:
        features = getattr(self._estimator, "n_features_in_", None)
        if features is None:
            return []
        return [TensorSpec("input-0", "FP64", (-1, int(features)))]

    def outputs(self) -> list[TensorSpec]:
        classes = getattr(self._estimator, "classes_", None)
        if classes is None:
            return [TensorSpec("predict", "FP64", (-1,))]
        return [
            TensorSpec("predict", datatype_of(np.asarray(classes)), (-1,)),
            TensorSpec("predict_proba", "FP64", (-1, len(classes))),
        ]
