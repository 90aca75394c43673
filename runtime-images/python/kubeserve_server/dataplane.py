"""The protocol-agnostic data plane: REST v1, REST v2 and gRPC v2 all call this and only this.

Prediction runs inline on the event loop for ordinary requests: a tabular model's predict is short
and holds the GIL, so a thread hand-off would add latency and no throughput; `--workers` is the way
to use more cores. Large bodies and requests under a deadline run in threads, a slow model's calls
one per turn of the loop or in a thread, and the in-flight limit and the deadline apply to every
protocol alike (scheduling.py); concurrent requests may be merged into one model call (batching.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kubeserve_server import __version__
from kubeserve_server.batching import Batcher, batch_key
from kubeserve_server.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
from kubeserve_server.model import Model
from kubeserve_server.protocol import (
    Array,
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    datatype_of,
)
from kubeserve_server.scheduling import Scheduler

logger = logging.getLogger(__name__)

SERVER_NAME = "kubeserve"
# The Open Inference Protocol's extensions served, by the names Triton lists them under.
EXTENSIONS = ["binary_tensor_data"]


class DataPlane:
    def __init__(
        self,
        model: Model,
        others_loaded: Callable[[], bool] = lambda: True,
        scheduler: Scheduler | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        """`others_loaded` says whether sibling worker processes have loaded the model too."""
        self.model = model
        self.scheduler = scheduler or Scheduler()
        self.batcher = batcher
        self.load_error: str | None = None
        self.draining = False
        self._others_loaded = others_loaded

    async def prepare(self) -> None:
        """The model's `prepare`, in a thread. A failure here is `load`'s to meet and report."""
        try:
            await asyncio.to_thread(self.model.prepare)
        except Exception as error:
            logger.debug("preparing to load %r failed: %s", self.model.name, error)

    async def load(self) -> str | None:
        """Load the model in a thread, so liveness answers while a big model loads.

        Returns None once loaded; on failure, logs and returns one line with the reason, which the
        server then leaves as the container's termination message before it exits.
        """
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.model.load)
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            name, model_dir = self.model.name, self.model.model_dir
            failure = f"model {name!r} failed to load from {model_dir}: {self.load_error}"
            logger.error("%s", failure, extra={"model": name, "model_dir": str(model_dir)})
            return failure
        logger.info(
            "model %r loaded from %s in %.2fs",
            self.model.name,
            self.model.model_dir,
            time.perf_counter() - started,
            extra={"model": self.model.name, "platform": self.model.platform},
        )
        return None

    def live(self) -> bool:
        return True

    def drain(self) -> None:
        """From now on readiness says no, so probes and load balancers move away; inference goes on."""
        self.draining = True

    def ready(self) -> bool:
        """Server readiness: with several workers, only once all of them can serve; never while draining."""
        return self.model.ready() and self._others_loaded() and not self.draining

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self._model(name, version).ready() and not self.draining

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self._ready_model(name, version)
        return {
            "name": model.name,
            "versions": [model.version] if model.version else [],
            "platform": model.platform,
            "inputs": [spec.as_dict() for spec in model.inputs()],
            "outputs": [spec.as_dict() for spec in model.outputs()],
        }

    async def infer(
        self, name: str, version: str | None, request: InferRequest, large: bool = False
    ) -> InferResponse:
        """`large`: the body was large enough to be predicted on in a thread (offload.py)."""
        model = self._ready_model(name, version)
        model.check_inputs(request.inputs)
        outputs = await self._predict(
            model, request.inputs, [output.name for output in request.outputs], large
        )
        requested = {output.name: output.parameters for output in request.outputs}
        for output in outputs:
            output.parameters = requested.get(output.name) or {}
        return InferResponse(
            model_name=model.name, model_version=model.version, outputs=outputs, id=request.id
        )

    async def predict_v1(self, name: str, instances: Array, large: bool = False) -> Array:
        """The v1 protocol: a batch of instances in, the model's default output out."""
        model = self._ready_model(name, None)
        specs = model.input_specs
        tensor = InferInput(
            name=specs[0].name if specs else "input-0",
            datatype=datatype_of(instances),
            shape=list(instances.shape),
            data=instances,
        )
        model.check_inputs([tensor])
        output: Array = (await self._predict(model, [tensor], [], large))[0].data
        return output

    def _model(self, name: str, version: str | None) -> Model:
        if name != self.model.name:
            raise ModelNotFound(f"model {name!r} not found; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            versions = [self.model.version] if self.model.version else []
            raise ModelNotFound(f"model {name!r} has no version {version!r}; its versions are {versions}")
        return self.model

    def _ready_model(self, name: str, version: str | None) -> Model:
        model = self._model(name, version)
        if not model.ready():
            reason = f"it failed to load: {self.load_error}" if self.load_error else "it is still loading"
            raise ModelNotReady(f"model {name!r} is not ready: {reason}")
        return model

    async def _predict(
        self, model: Model, inputs: list[InferInput], outputs: Sequence[str], large: bool
    ) -> list[InferOutput]:
        """Wait for a turn, then run the model alone or in a batch; large bodies are never batched."""
        predict = partial(self._call_model, model, outputs)
        async with self.scheduler.turn() as turn:
            batcher = None if large else self.batcher
            key = None if batcher is None else batch_key(inputs, outputs)
            if batcher is None or key is None:
                call = self.scheduler.call(partial(predict, inputs), large=large)
            else:
                call = batcher.submit(key, inputs[0], predict)
            return await turn.result(call)

    def _call_model(
        self, model: Model, outputs: Sequence[str], inputs: list[InferInput]
    ) -> list[InferOutput]:
        try:
            return model.predict(inputs, outputs)
        except InferenceError:
            raise
        except (ValueError, TypeError, IndexError) as error:
            raise InvalidInput(f"model {model.name!r} rejected the input: {error}") from None
        except Exception as error:
            logger.exception("model %r failed to predict", model.name)
            raise InferenceError(f"model {model.name!r} failed to predict: {type(error).__name__}") from None
