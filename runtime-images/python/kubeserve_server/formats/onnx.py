"""ONNX models run by onnxruntime, on the GPU when the CUDA provider is installed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime

from kubeserve_server.errors import InvalidInput
from kubeserve_server.model import Model
from kubeserve_server.protocol import DTYPES, Array, InferInput, InferOutput, TensorSpec

# onnxruntime's element type names -> v2 datatypes.
_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _spec(node: onnxruntime.NodeArg) -> TensorSpec:
    shape = tuple(dim if isinstance(dim, int) else -1 for dim in node.shape or ())
    return TensorSpec(node.name, _DATATYPES.get(node.type, node.type), shape)


class ONNXModel(Model):
    platform = "onnx"
    suffixes = (".onnx",)

    _session: onnxruntime.InferenceSession | None = None
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    def load(self) -> None:
        available = onnxruntime.get_available_providers()
        providers = [name for name in _PREFERRED_PROVIDERS if name in available]
        session = onnxruntime.InferenceSession(str(self.model_file(self.suffixes)), providers=providers)
        self._inputs = [_spec(node) for node in session.get_inputs()]
        self._outputs = [_spec(node) for node in session.get_outputs()]
        self._session = session

    def ready(self) -> bool:
        return self._session is not None

    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    def predict(self, inputs: list[InferInput], outputs: Sequence[str]) -> list[InferOutput]:
        assert self._session is not None
        if len(inputs) == 1 and len(self._inputs) == 1:
            named = {self._inputs[0].name: inputs[0]}
        else:
            named = {tensor.name: tensor for tensor in inputs}
        feeds = {}
        for spec in self._inputs:
            tensor = named.get(spec.name)
            if tensor is None:
                raise InvalidInput(f"model {self.name!r} needs input {spec.name!r}")
            feeds[spec.name] = self._cast(tensor, spec)
        known = [spec.name for spec in self._outputs]
        wanted = list(outputs) or known
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise InvalidInput(f"model {self.name!r} has no output(s) {unknown}; its outputs are {known}")
        results = self._session.run(wanted, feeds)
        return [InferOutput(name, np.asarray(result)) for name, result in zip(wanted, results, strict=True)]

    def _cast(self, tensor: InferInput, spec: TensorSpec) -> Array:
        """Numeric inputs are cast to the graph's element type, since JSON numbers carry none;
        BYTES go in as str, which is what onnxruntime's string tensors hold."""
        if spec.datatype == "BYTES":
            text = [
                item.decode() if isinstance(item, bytes) else item for item in tensor.data.ravel().tolist()
            ]
            return np.array(text, dtype=object).reshape(tensor.data.shape)
        dtype = DTYPES.get(spec.datatype)
        if dtype is None or tensor.data.dtype == dtype:
            return tensor.data
        return tensor.data.astype(dtype)
