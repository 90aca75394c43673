"""LightGBM boosters saved in LightGBM's text format."""

from __future__ import annotations

from collections.abc import Callable

import lightgbm
import numpy as np

from kubeserve_server.model import TabularModel
from kubeserve_server.protocol import Array, TensorSpec


class LightGBMModel(TabularModel):
    platform = "lightgbm"
    suffixes = (".txt",)

    _booster: lightgbm.Booster | None = None

    def load(self) -> None:
        self._booster = lightgbm.Booster(model_file=str(self.model_file(self.suffixes)))

    def ready(self) -> bool:
        return self._booster is not None

    def output_functions(self) -> dict[str, Callable[[Array], Array]]:
        booster = self._booster
        assert booster is not None
        return {"predict": lambda features: np.asarray(booster.predict(features))}

    def inputs(self) -> list[TensorSpec]:
        assert self._booster is not None
        return [TensorSpec("input-0", "FP64", (-1, self._booster.num_feature()))]

    def outputs(self) -> list[TensorSpec]:
        assert self._booster is not None
        classes = self._booster.num_model_per_iteration()
        return [TensorSpec("predict", "FP64", (-1, classes) if classes > 1 else (-1,))]
