"""The base class every model format plugs into, and the table that finds a format's plug-in.

A format's heavy library (scikit-learn, xgboost, lightgbm, onnxruntime) is imported only by its own
plug-in module, which `model_class` imports on demand, so an image carries only what it serves.
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kubeserve_server.errors import InvalidInput
from kubeserve_server.protocol import Array, InferInput, InferOutput, TensorSpec

FORMATS: dict[str, str] = {
    "sklearn": "kubeserve_server.formats.sklearn:SKLearnModel",
    "xgboost": "kubeserve_server.formats.xgboost:XGBoostModel",
    "lightgbm": "kubeserve_server.formats.lightgbm:LightGBMModel",
    "onnx": "kubeserve_server.formats.onnx:ONNXModel",
}


class ModelLoadError(Exception):
    """The model directory holds nothing this format can load; the message says what was found."""


class Model(ABC):
    """One served model: `load` it once, then `predict` on decoded tensors once `ready`."""

    platform: str = ""

    def __init__(self, name: str, model_dir: Path, version: str | None = None) -> None:
        self.name = name
        self.model_dir = model_dir
        self.version = version

    @abstractmethod
    def load(self) -> None:
        """Read the model from `model_dir`; raise on failure: the message becomes the server's exit reason."""

    def prepare(self) -> None:
        """Import what `load` will need while the model's files are still arriving (the server's own
        download runs meanwhile); nothing by default."""
        return None

    @abstractmethod
    def ready(self) -> bool:
        """True once `load` has succeeded."""

    @abstractmethod
    def predict(self, inputs: list[InferInput], outputs: Sequence[str]) -> list[InferOutput]:
        """Run the model; `outputs` names the tensors wanted, empty meaning the default ones."""

    def inputs(self) -> list[TensorSpec]:
        return []

    def outputs(self) -> list[TensorSpec]:
        return []

    def model_file(self, suffixes: Sequence[str]) -> Path:
        """The one file under `model_dir` with one of `suffixes`, preferring `model.<suffix>`."""
        if self.model_dir.is_file():
            return self.model_dir
        if not self.model_dir.is_dir():
            raise ModelLoadError(f"model directory {self.model_dir} does not exist")
        found = sorted(
            path for path in self.model_dir.rglob("*") if path.is_file() and path.suffix in suffixes
        )
        preferred = [path for path in found if path.stem == "model"]
        if len(preferred) == 1:
            return preferred[0]
        if len(found) == 1:
            return found[0]
        present = sorted(str(path.relative_to(self.model_dir)) for path in self.model_dir.rglob("*"))
        if not found:
            raise ModelLoadError(
                f"no {self.platform} model file ({', '.join(suffixes)}) in {self.model_dir}; "
                f"it holds: {present or 'nothing'}"
            )
        raise ModelLoadError(
            f"several {self.platform} model files in {self.model_dir} and none named model.*: "
            f"{[str(path.relative_to(self.model_dir)) for path in found]}"
        )

    @functools.cached_property
    def input_specs(self) -> list[TensorSpec]:
        """`inputs()`, read once: fixed after `load`, and only asked for after it (on every request)."""
        return self.inputs()

    def check_inputs(self, inputs: list[InferInput]) -> None:
        """Refuse inputs whose count, kind or fixed dimensions contradict the model's metadata."""
        specs = self.input_specs
        if not specs:
            return
        if len(inputs) != len(specs):
            raise InvalidInput(
                f"model {self.name!r} takes {len(specs)} input(s) "
                f"({', '.join(spec.name for spec in specs)}), got {len(inputs)}"
            )
        by_name = {spec.name: spec for spec in specs}
        for position, tensor in enumerate(inputs):
            spec = by_name.get(tensor.name, specs[position] if len(specs) == 1 else None)
            if spec is None:
                raise InvalidInput(
                    f"model {self.name!r} has no input {tensor.name!r}; its inputs are {sorted(by_name)}"
                )
            if (tensor.datatype == "BYTES") != (spec.datatype == "BYTES"):
                raise InvalidInput(
                    f"input {tensor.name!r} has datatype {tensor.datatype}, model expects {spec.datatype}"
                )
            if len(tensor.shape) != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, tensor.shape, strict=True)
            ):
                raise InvalidInput(
                    f"input {tensor.name!r} has shape {tensor.shape}, model expects {list(spec.shape)} "
                    "(-1 is any size)"
                )


class TabularModel(Model):
    """A model fed one 2-D feature matrix, whose named outputs are methods over that matrix."""

    default_output = "predict"

    @abstractmethod
    def output_functions(self) -> dict[str, Callable[[Array], Array]]:
        """Output name -> function computing it from the feature matrix."""

    def predict(self, inputs: list[InferInput], outputs: Sequence[str]) -> list[InferOutput]:
        if len(inputs) != 1:
            raise InvalidInput(f"model {self.name!r} takes one input tensor, got {len(inputs)}")
        features = inputs[0].data
        if features.ndim == 1:
            features = features.reshape(1, -1)
        functions = self.output_functions()
        results = []
        for name in outputs or [self.default_output]:
            function = functions.get(name)
            if function is None:
                raise InvalidInput(
                    f"model {self.name!r} has no output {name!r}; its outputs are {sorted(functions)}"
                )
            results.append(InferOutput(name=name, data=np.asarray(function(features))))
        return results


def model_class(model_format: str) -> type[Model]:
    """Import the plug-in for `model_format` (and with it the format's library)."""
    try:
        module_name, class_name = FORMATS[model_format].split(":")
    except KeyError:
        raise ValueError(f"unknown model format {model_format!r}; choose one of {sorted(FORMATS)}") from None
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls
