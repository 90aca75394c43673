"""gRPC through the activator: an HTTP/2 connection to a service at zero is held until a pod is Ready,
then joined to the pod's gRPC port; the first request's :authority names the service."""

from __future__ import annotations

import asyncio

import grpc
import hpack
import numpy as np
import pytest

from kubeserve_activator.h2c import NotGrpc, Preamble, frame, goaway, read_authority
from kubeserve_activator.server import RunningActivator
from kubeserve_activator.tables import EndpointTable
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.activator.conftest import IRIS, ActivatorFactory, RecordingWaker, appear_after, client, metric
from tests.server.conftest import GrpcClient, Server, Trained
from tests.server.test_grpc_v2 import infer_request


def grpc_infer(running: RunningActivator, authority: str, rows: np.ndarray) -> pb.ModelInferResponse:  # type: ignore[type-arg]
    """One ModelInfer on a fresh channel to the activator's gRPC port, naming `authority`."""
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}", options=options) as channel:
        return GrpcClient(channel).infer(infer_request(rows))


async def test_cold_grpc_calls_are_held_share_one_wake_and_reach_the_model(
    activator: ActivatorFactory, endpoints: EndpointTable, iris_backend: Server, sklearn_iris: Trained
) -> None:
    endpoints.grpc_ports[IRIS] = iris_backend.grpc_port
    waker = RecordingWaker(appear_after(endpoints, iris_backend, delay=1.0))
    rows = [sklearn_iris.features[i : i + 2] for i in (0, 60, 120)]
    async with activator(waker) as running:
        answers = await asyncio.gather(
            *(asyncio.to_thread(grpc_infer, running, "iris.models.svc.cluster.local:81", r) for r in rows)
        )
        assert waker.calls == [IRIS]
        assert await metric(running, "kubeserve_activator_wakes_total", service="models/iris") == 1
    for response, sent in zip(answers, rows, strict=True):
        assert list(response.outputs[0].contents.int64_contents) == sklearn_iris.model.predict(sent).tolist()


async def test_an_unknown_authority_is_refused_with_its_reason(activator: ActivatorFactory) -> None:
    waker = RecordingWaker()
    async with activator(waker) as running:
        with pytest.raises(grpc.RpcError) as refused:
            await asyncio.to_thread(grpc_infer, running, "nothere.models:81", np.zeros((1, 4)))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    assert waker.calls == []


async def test_a_connection_that_is_not_http2_is_closed_and_the_activator_goes_on(
    activator: ActivatorFactory, endpoints: EndpointTable, iris_backend: Server
) -> None:
    endpoints.set(IRIS, [("127.0.0.1", iris_backend.http_port)])
    async with activator(RecordingWaker()) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.grpc_port)
        writer.write(b"GET / HTTP/1.1\r\nHost: iris.models\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 15) == b"", "closed, nothing answered"
        writer.close()
        async with client(running) as http:
            assert (await http.get("/v2/health/ready")).status_code == 200


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = frame(0x4, 0)
SETTINGS_ACK = frame(0x4, 0x1)


class Recorder:
    """A stream writer that keeps what is written."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


async def authority_of(data: bytes, answer: Recorder | None = None) -> Preamble:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_authority(reader, answer or Recorder())  # type: ignore[arg-type]


async def test_the_authority_is_read_across_padding_priority_and_continuation() -> None:
    block = hpack.Encoder().encode(
        [(":method", "POST"), (":scheme", "http"), (":authority", "iris.models:81"), (":path", "/x")]
    )
    padded = bytes((3,)) + bytes(5) + block[:10] + b"\0\0\0"  # pad length, priority, fragment, padding
    headers = frame(0x1, 0x8 | 0x20, padded, stream=1) + frame(0x9, 0x4, block[10:], stream=1)
    answer = Recorder()
    preamble = await authority_of(PREFACE + SETTINGS + SETTINGS_ACK + headers + b"more", answer)
    assert preamble == Preamble(PREFACE + SETTINGS + headers, "iris.models:81", acknowledged=True)
    assert answer.written == SETTINGS + SETTINGS_ACK, "our SETTINGS, and the acknowledgement of the client's"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"GET / HTTP/1.1\r\nHost: iris.models\r\n\r\n", "prior knowledge"),
        (PREFACE + frame(0x1, 0x4, b"\x82", stream=1), "does not end with its SETTINGS"),
        (PREFACE + SETTINGS + frame(0x1, 0x4, hpack.Encoder().encode([(":path", "/x")]), 1), "no :authority"),
        (PREFACE + SETTINGS + frame(0x1, 0, b"\x82", 1) + frame(0x0, 0, b"data", 1), "inside a header block"),
        (PREFACE + SETTINGS + frame(0x1, 0x4, b"\xff\xff\xff\xff", 1), "undecodable"),
        (PREFACE + SETTINGS + frame(0x1, 0x8 | 0x4, b"\x09abc", 1), "padding"),
        (PREFACE + SETTINGS + frame(0x0, 0, bytes(70_000), 1), "first 65536 bytes"),
    ],
)
async def test_a_preamble_that_is_no_grpc_request_is_refused(data: bytes, complaint: str) -> None:
    with pytest.raises(NotGrpc, match=complaint):
        await authority_of(data)


def test_a_refused_connection_gets_a_goaway_with_its_reason() -> None:
    sent = goaway("no such service")
    length, kind = int.from_bytes(sent[:3]), sent[3]
    assert (kind, length, len(sent)) == (0x7, 8 + len("no such service"), 9 + length)
    assert int.from_bytes(sent[13:17]) == 0x7 and sent[17:] == b"no such service"
