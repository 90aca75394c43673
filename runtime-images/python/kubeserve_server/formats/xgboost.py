"""XGBoost boosters saved as JSON, UBJSON or the legacy binary format.

Outputs are the booster's own predictions (probabilities for `multi:softprob`), as KServe's
XGBoost server gives them, so a model moves between the two servers unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import xgboost

from kubeserve_server.model import TabularModel
from kubeserve_server.protocol import Array, TensorSpec


class XGBoostModel(TabularModel):
    platform = "xgboost"
    suffixes = (".json", ".ubj", ".bst")

    _booster: xgboost.Booster | None = None

    def load(self) -> None:
        self._booster = xgboost.Booster(model_file=str(self.model_file(self.suffixes)))

    def ready(self) -> bool:
        return self._booster is not None

    def output_functions(self) -> dict[str, Callable[[Array], Array]]:
        booster = self._booster
        assert booster is not None
        return {"predict": booster.inplace_predict}

    def inputs(self) -> list[TensorSpec]:
        assert self._booster is not None
        return [TensorSpec("input-0", "FP32", (-1, self._booster.num_features()))]

    def outputs(self) -> list[TensorSpec]:
        assert self._booster is not None
        params = json.loads(self._booster.save_config())["learner"]["learner_model_param"]
        classes = int(params.get("num_class", "0"))
        return [TensorSpec("predict", "FP32", (-1, classes) if classes > 1 else (-1,))]
