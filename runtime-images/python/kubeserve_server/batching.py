"""Adaptive batching: concurrent predict requests merged into one model call, as KServe's batcher does.

A batch collects requests whose rows can be stacked: one input tensor of the same name, datatype
and shape past the first dimension, asking for the same outputs (v1 and v2 requests alike). It
goes to the model once its rows reach `--max_batch_size`, or `--max_batch_latency_ms` after its
first request arrived, whichever comes first: KServe's rule, except that a batch never grows past
the size. A request that would overflow it starts the next batch, and one larger than the size
runs alone. Each request gets its own rows of every output back, in order.

If the merged call fails, or an output does not have one row per input row, the batch's requests
run again one at a time, so one request's bad values fail only that request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from kubeserve_server.protocol import InferInput, InferOutput
from kubeserve_server.scheduling import Scheduler

logger = logging.getLogger(__name__)

# (input name, datatype, shape past the rows, outputs asked for)
BatchKey = tuple[str, str, tuple[int, ...], tuple[str, ...]]
Predict = Callable[[list[InferInput]], list[InferOutput]]
Outcome = list[InferOutput] | Exception


def batch_key(inputs: list[InferInput], outputs: Sequence[str]) -> BatchKey | None:
    """What a request must share with others to join their batch; None if it has no rows to stack."""
    if len(inputs) != 1 or inputs[0].data.ndim < 2:
        return None
    tensor = inputs[0]
    return tensor.name, tensor.datatype, tuple(tensor.data.shape[1:]), tuple(outputs)


@dataclass
class _Batch:
    key: BatchKey
    predict: Predict
    tensors: list[InferInput] = field(default_factory=list)
    waiters: list[asyncio.Future[list[InferOutput]]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(
        self, scheduler: Scheduler, max_size: int, max_latency: float, observe: Callable[[int], None]
    ) -> None:
        """`max_latency` in seconds; `observe` records each batch's rows (the batch-size histogram)."""
        self.max_size = max_size
        self.max_latency = max_latency
        self._scheduler = scheduler
        self._observe = observe
        self._open: dict[BatchKey, _Batch] = {}

    def submit(
        self, key: BatchKey, tensor: InferInput, predict: Predict
    ) -> asyncio.Future[list[InferOutput]]:
        """Add one request's tensor to the open batch for `key`; the future holds its own outputs.

        `predict` runs the model on a list holding one tensor; the batch uses its first request's.
        """
        loop = asyncio.get_running_loop()
        rows = tensor.data.shape[0]
        batch = self._open.get(key)
        if batch is not None and batch.rows + rows > self.max_size:
            self._send(batch)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(key, predict)
            batch.timer = loop.call_later(self.max_latency, self._send, batch)
        waiter: asyncio.Future[list[InferOutput]] = loop.create_future()
        batch.tensors.append(tensor)
        batch.waiters.append(waiter)
        batch.rows += rows
        if batch.rows >= self.max_size:
            self._send(batch)
        return waiter

    def _send(self, batch: _Batch) -> None:
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        self._observe(batch.rows)
        call = self._scheduler.call(partial(_run, batch.predict, batch.tensors))
        call.add_done_callback(partial(_deliver, batch.waiters))


def _run(predict: Predict, tensors: list[InferInput]) -> list[Outcome]:
    """Each request's outputs (or error), from one merged call if it works, else from one call each."""
    if len(tensors) > 1:
        counts = [tensor.data.shape[0] for tensor in tensors]
        first = tensors[0]
        data = np.concatenate([tensor.data for tensor in tensors])
        merged = InferInput(name=first.name, datatype=first.datatype, shape=list(data.shape), data=data)
        try:
            outputs = predict([merged])
        except Exception as error:
            logger.debug(
                "a batch of %d requests failed (%s); running them one at a time", len(tensors), error
            )
        else:
            if all(output.data.ndim >= 1 and output.data.shape[0] == data.shape[0] for output in outputs):
                bounds = np.cumsum(counts)[:-1]
                parts = [np.split(output.data, bounds) for output in outputs]
                return [
                    [
                        InferOutput(output.name, part[index])
                        for output, part in zip(outputs, parts, strict=True)
                    ]
                    for index in range(len(tensors))
                ]
            logger.debug("the model's outputs have no row per input row; running the batch one at a time")
    return [_alone(predict, tensor) for tensor in tensors]


def _alone(predict: Predict, tensor: InferInput) -> Outcome:
    try:
        return predict([tensor])
    except Exception as error:
        return error


def _deliver(waiters: list[asyncio.Future[list[InferOutput]]], call: asyncio.Future[list[Outcome]]) -> None:
    if call.cancelled():
        for waiter in waiters:
            waiter.cancel()
        return
    failure = call.exception()
    if failure is not None:
        for waiter in waiters:
            waiter.set_exception(failure)
        return
    for waiter, outcome in zip(waiters, call.result(), strict=True):
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
