"""The gRPC listener's own HTTP/2 (grpc_http2.py) at its edges, against a real server.

Clients: grpcio where it can say what is asked, the `h2` library's client state machine over a raw
socket where the test must see frames (windows, PING, GOAWAY, refused streams), and frames built by
hand with `hyperframe` where even h2 would refuse to send them (padding, CONTINUATION, more streams
than the server allows).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import numpy as np
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, Frame, HeadersFrame, PingFrame, RstStreamFrame

from kubeserve_server.grpc_http2 import GrpcError, StatusCode, parse_timeout, percent_encoded
from kubeserve_server.proto import grpc_predict_v2_pb2 as pb
from tests.server.conftest import GrpcClient, Server, Trained, running_server
from tests.server.test_grpc_v2 import infer_request

SERVICE = "/inference.GRPCInferenceService"
WAIT_SECONDS = 20
MAX_STREAMS = 128  # what the server advertises (grpc_http2.MAX_CONCURRENT_STREAMS)


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory, sklearn_iris: Trained) -> Iterator[Server]:
    args = ("--header_timeout=1", "--body_timeout=2", "--max_request_size=200000")
    with running_server(tmp_path_factory.mktemp("logs"), sklearn_iris.model_dir, "sklearn", *args) as server:
        yield server


def framed(message: bytes) -> bytes:
    """gRPC's length-prefixed message: not compressed, 4-byte length."""
    return struct.pack(">BL", 0, len(message)) + message


def request_headers(path: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


@dataclass
class Answer:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytes = b""
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    reset: int | None = None
    ended: bool = False

    @property
    def status(self) -> int | None:
        """grpc-status, from the trailers or from a trailers-only answer's headers."""
        value = self.trailers.get(b"grpc-status", self.headers.get(b"grpc-status"))
        return None if value is None else int(value)

    @property
    def message(self) -> str:
        return (self.trailers.get(b"grpc-message") or self.headers.get(b"grpc-message") or b"").decode()


class H2Client:
    """h2's client state machine on a blocking socket; the test decides when to read and what to ack."""

    def __init__(self, server: Server, window: int | None = None, auto_ack: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=WAIT_SECONDS)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.auto_ack = auto_ack
        self.answers: dict[int, Answer] = {}
        self.events: list[h2.events.Event] = []
        self.closed = False
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def call(self, path: str, message: bytes, *extra: tuple[str, str], end: bool = True) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, request_headers(path, *extra))
        self.conn.send_data(stream_id, framed(message), end_stream=end)
        self.answers[stream_id] = Answer()
        self.flush()
        return stream_id

    def receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.events.append(event)
            answer = self.answers.get(getattr(event, "stream_id", 0) or 0)
            if answer is None:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                answer.headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                answer.data += event.data
                if self.auto_ack:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                answer.trailers = dict(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset):
                answer.reset = event.error_code
        self.flush()

    def until(self, done: object) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done() and not self.closed:  # type: ignore[operator]
            assert time.monotonic() < deadline, "no answer in time"
            self.receive()

    def answer(self, stream_id: int) -> Answer:
        self.until(lambda: self.answers[stream_id].ended or self.answers[stream_id].reset is not None)
        return self.answers[stream_id]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def h2_client(edge_server: Server) -> Iterator[H2Client]:
    client = H2Client(edge_server)
    yield client
    client.close()


def test_pure_parts() -> None:
    assert parse_timeout(b"250m") == 0.25 and parse_timeout(b"3S") == 3 and parse_timeout(b"1H") == 3600
    for bad in (b"", b"1", b"123456789S", b"1s", b"-1S", b"1.5S"):
        with pytest.raises(GrpcError):
            parse_timeout(bad)
    assert percent_encoded("50% of ü\n") == b"50%25 of %C3%BC%0A"


def test_answers_with_headers_message_and_trailers(h2_client: H2Client, sklearn_iris: Trained) -> None:
    stream_id = h2_client.call(
        f"{SERVICE}/ModelInfer", infer_request(sklearn_iris.features[:3]).SerializeToString()
    )
    answer = h2_client.answer(stream_id)
    assert answer.headers[b":status"] == b"200" and answer.headers[b"content-type"] == b"application/grpc"
    assert answer.status == 0 and answer.reset is None
    response = pb.ModelInferResponse.FromString(answer.data[5:])
    assert struct.unpack(">BL", answer.data[:5]) == (0, len(answer.data) - 5)
    assert (
        list(response.outputs[0].contents.int64_contents)
        == sklearn_iris.model.predict(sklearn_iris.features[:3]).tolist()
    )


def test_an_answer_larger_than_the_clients_window_waits_for_its_window_updates(
    edge_server: Server, sklearn_iris: Trained
) -> None:
    window = 1000
    client = H2Client(edge_server, window=window, auto_ack=False)
    try:
        request = infer_request(sklearn_iris.features)
        request.outputs.add(name="predict_proba")  # 150 x 3 doubles: 3.6 KB
        stream_id = client.call(f"{SERVICE}/ModelInfer", request.SerializeToString())
        answer = client.answers[stream_id]
        client.until(lambda: len(answer.data) >= window)
        # Nothing past the window arrives until the client acknowledges what it read.
        client.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.receive()
        client.sock.settimeout(WAIT_SECONDS)
        assert len(answer.data) == window and not answer.ended
        while not answer.ended:
            client.conn.acknowledge_received_data(window, stream_id)
            client.flush()
            client.receive()
        response = pb.ModelInferResponse.FromString(answer.data[5:])
        assert len(answer.data) > 3 * window and answer.status == 0
        probabilities = np.array(response.outputs[0].contents.fp64_contents).reshape(150, 3)
        np.testing.assert_allclose(probabilities, sklearn_iris.model.predict_proba(sklearn_iris.features))
    finally:
        client.close()


def test_ping_is_acknowledged(h2_client: H2Client) -> None:
    h2_client.conn.ping(b"kubeserv")
    h2_client.flush()
    h2_client.until(lambda: any(isinstance(event, h2.events.PingAckReceived) for event in h2_client.events))
    [ack] = [event for event in h2_client.events if isinstance(event, h2.events.PingAckReceived)]
    assert ack.ping_data == b"kubeserv"


def test_unknown_method_is_unimplemented(edge_server: Server) -> None:
    with grpc.insecure_channel(edge_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            GrpcClient(channel).call("ModelExplain", pb.ServerLiveRequest(), pb.ServerLiveResponse)
        error: grpc.Call = raised.value  # type: ignore[assignment]
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "ModelExplain" in (error.details() or "")
        # The connection serves on.
        assert GrpcClient(channel).call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live


@pytest.mark.parametrize(
    ("header", "status", "fragment"),
    [
        (("grpc-timeout", "soon"), StatusCode.INTERNAL, "malformed grpc-timeout"),
        (("grpc-encoding", "gzip"), StatusCode.UNIMPLEMENTED, "grpc-encoding gzip"),
    ],
)
def test_bad_headers_get_a_status(
    h2_client: H2Client, header: tuple[str, str], status: int, fragment: str
) -> None:
    stream_id = h2_client.call(f"{SERVICE}/ServerLive", b"", header)
    answer = h2_client.answer(stream_id)
    assert answer.status == status and fragment in answer.message
    assert answer.headers[b"grpc-accept-encoding"] == b"identity"


def test_a_client_deadline_ends_the_call_with_deadline_exceeded(h2_client: H2Client) -> None:
    """The message never comes: the client's 300 ms pass before the server's body timeout (2 s)."""
    started = time.monotonic()
    stream_id = h2_client.conn.get_next_available_stream_id()
    h2_client.conn.send_headers(stream_id, request_headers(f"{SERVICE}/ServerLive", ("grpc-timeout", "300m")))
    h2_client.answers[stream_id] = Answer()
    h2_client.flush()
    answer = h2_client.answer(stream_id)
    assert answer.status == StatusCode.DEADLINE_EXCEEDED and "grpc-timeout" in answer.message
    assert 0.25 < time.monotonic() - started < 1.5


def test_a_message_that_never_completes_times_out(h2_client: H2Client) -> None:
    stream_id = h2_client.conn.get_next_available_stream_id()
    h2_client.conn.send_headers(stream_id, request_headers(f"{SERVICE}/ServerLive"))
    h2_client.conn.send_data(stream_id, b"\x00\x00\x00")  # half a length prefix, then nothing
    h2_client.answers[stream_id] = Answer()
    h2_client.flush()
    answer = h2_client.answer(stream_id)
    assert answer.status == StatusCode.DEADLINE_EXCEEDED and "within 2s" in answer.message
    assert answer.reset == 0  # NO_ERROR: the client is told to stop sending


def test_a_too_large_message_is_refused_from_its_length_prefix(h2_client: H2Client) -> None:
    """Only the prefix is sent: the server refuses without waiting for 1 MB it would not take."""
    stream_id = h2_client.conn.get_next_available_stream_id()
    h2_client.conn.send_headers(stream_id, request_headers(f"{SERVICE}/ModelInfer"))
    h2_client.conn.send_data(stream_id, struct.pack(">BL", 0, 1_000_000))
    h2_client.answers[stream_id] = Answer()
    h2_client.flush()
    answer = h2_client.answer(stream_id)
    assert answer.status == StatusCode.RESOURCE_EXHAUSTED and "200000" in answer.message
    assert answer.reset == 0


def test_a_too_large_message_is_refused_to_grpcio(edge_server: Server) -> None:
    with grpc.insecure_channel(edge_server.grpc_target) as channel, pytest.raises(grpc.RpcError) as raised:
        GrpcClient(channel).infer(infer_request(np.zeros((10_000, 4))))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "--max_request_size" in raised.value.details()  # type: ignore[attr-defined]


def test_half_a_preface_then_silence_loses_the_connection(edge_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", edge_server.grpc_port), timeout=WAIT_SECONDS) as sock:
        started = time.monotonic()
        sock.sendall(b"PRI * HTTP/2.0\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert 0.9 < time.monotonic() - started < 5  # --header_timeout=1
    assert received, "closed without the server's SETTINGS and GOAWAY"


def test_an_http1_request_is_not_a_preface(edge_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", edge_server.grpc_port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while sock.recv(65536):
            pass  # the server closes at once: recv returns b"" well before the test's timeout


def _hand_built(*frames: Frame) -> bytes:
    return b"".join(frame.serialize() for frame in frames)


def _hand_built_connection(server: Server) -> tuple[socket.socket, h2.connection.H2Connection]:
    """A socket past the preface, and an h2 state machine only to read the server's frames."""
    sock = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=WAIT_SECONDS)
    reader = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    reader.initiate_connection()
    sock.sendall(reader.data_to_send())
    return sock, reader


def _read_frames(sock: socket.socket, wanted: int) -> list[Frame]:
    """Frames the server sends, parsed with hyperframe, until `wanted` streams have ended or reset."""
    frames: list[Frame] = []
    buffer = b""
    ended: set[int] = set()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(ended) < wanted:
        assert time.monotonic() < deadline
        chunk = sock.recv(65536)
        assert chunk, "closed early"
        buffer += chunk
        while len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
            frames.append(frame)
            if isinstance(frame, RstStreamFrame) or "END_STREAM" in frame.flags:
                ended.add(frame.stream_id)
    return frames


def test_padding_and_continuation_frames_are_read(edge_server: Server) -> None:
    sock, _ = _hand_built_connection(edge_server)
    with sock:
        block = hpack.Encoder().encode(request_headers(f"{SERVICE}/ServerLive"))
        first = HeadersFrame(1, block[:10], flags=["PADDED"], pad_length=7)
        middle = ContinuationFrame(1, block[10:20])
        last = ContinuationFrame(1, block[20:], flags=["END_HEADERS"])
        data = DataFrame(1, framed(b""), flags=["PADDED", "END_STREAM"], pad_length=20)
        sock.sendall(_hand_built(first, middle, last, data))
        frames = _read_frames(sock, 1)
    data_frames = [frame for frame in frames if isinstance(frame, DataFrame) and frame.stream_id == 1]
    message = b"".join(frame.data for frame in data_frames)[5:]
    assert pb.ServerLiveResponse.FromString(message).live


def test_streams_past_the_advertised_limit_are_refused(edge_server: Server) -> None:
    """Streams whose message has not come yet stay open: the one past the limit is refused, the others
    are answered once their messages come."""
    sock, _ = _hand_built_connection(edge_server)
    encoder = hpack.Encoder()
    ids = [1 + 2 * index for index in range(MAX_STREAMS + 1)]
    with sock:
        sock.sendall(
            _hand_built(
                *(
                    HeadersFrame(
                        i, encoder.encode(request_headers(f"{SERVICE}/ServerLive")), flags=["END_HEADERS"]
                    )
                    for i in ids
                )
            )
        )
        sock.sendall(_hand_built(*(DataFrame(i, framed(b""), flags=["END_STREAM"]) for i in ids)))
        frames = _read_frames(sock, len(ids))
    refused = {
        frame.stream_id for frame in frames if isinstance(frame, RstStreamFrame) and frame.error_code == 7
    }
    answered = {
        frame.stream_id for frame in frames if isinstance(frame, HeadersFrame) and "END_STREAM" in frame.flags
    }
    assert refused == {ids[-1]}
    assert answered == set(ids[:-1])


def test_many_concurrent_calls_on_one_connection(edge_server: Server, sklearn_iris: Trained) -> None:
    """More calls at once than the stream limit: grpcio queues the rest, and every call is answered."""
    calls = 300
    expected = sklearn_iris.model.predict(sklearn_iris.features[:2]).tolist()

    async def run() -> list[list[int]]:
        async with grpc.aio.insecure_channel(edge_server.grpc_target) as channel:
            infer = channel.unary_unary(
                f"{SERVICE}/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            request = infer_request(sklearn_iris.features[:2])
            responses = await asyncio.gather(*(infer(request, timeout=WAIT_SECONDS) for _ in range(calls)))
        return [list(response.outputs[0].contents.int64_contents) for response in responses]

    assert asyncio.run(run()) == [expected] * calls


def test_drain_sends_goaway_and_serves_new_connections_one_call_each(
    tmp_path: Path, sklearn_iris: Trained
) -> None:
    with running_server(tmp_path, sklearn_iris.model_dir, "sklearn", "--drain_seconds=30") as server:
        idle = H2Client(server)
        busy = H2Client(server)
        try:
            assert busy.answer(busy.call(f"{SERVICE}/ServerLive", b"")).status == 0
            os.kill(server.process.pid, signal.SIGTERM)
            for client in (idle, busy):
                client.until(lambda c=client: c.closed)
                [goaway] = [
                    event for event in client.events if isinstance(event, h2.events.ConnectionTerminated)
                ]
                assert goaway.error_code == 0
            assert [
                g.last_stream_id for g in busy.events if isinstance(g, h2.events.ConnectionTerminated)
            ] == [1]
            # A connection opened while draining gets its call answered, then GOAWAY.
            late = H2Client(server)
            try:
                answer = late.answer(late.call(f"{SERVICE}/ServerReady", b""))
                assert answer.status == 0 and not pb.ServerReadyResponse.FromString(answer.data[5:]).ready
                late.until(lambda: late.closed)
                assert any(isinstance(event, h2.events.ConnectionTerminated) for event in late.events)
            finally:
                late.close()
        finally:
            idle.close()
            busy.close()


def _resident_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) * 1024


def test_a_client_that_never_reads_cannot_make_the_server_buffer_without_bound(
    edge_server: Server, sklearn_iris: Trained
) -> None:
    """A PING flood from a client that reads nothing: each PING asks for an acknowledgement, and a
    server that kept reading would queue them without end. Once its answers back up, it reads no
    more from that client (whose sending then stalls), and serves the others meanwhile."""
    ping = PingFrame(0)
    ping.opaque_data = b"12345678"
    burst = ping.serialize() * 4096
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the kernel holds few of the answers
    sock.settimeout(WAIT_SECONDS)
    sock.connect(("127.0.0.1", edge_server.grpc_port))
    reader = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    reader.initiate_connection()
    sock.sendall(reader.data_to_send())
    before = _resident_bytes(edge_server.process.pid)
    sent, stalled = 0, False
    sock.settimeout(2)
    flood_ends = time.monotonic() + 8
    with sock:
        while time.monotonic() < flood_ends:
            try:
                sock.sendall(burst)
            except TimeoutError:
                stalled = True
                break
            sent += len(burst)
        grown = _resident_bytes(edge_server.process.pid) - before
        with grpc.insecure_channel(edge_server.grpc_target) as channel:
            live = GrpcClient(channel).call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse)
    assert live.live
    assert stalled, f"the server read all {sent} bytes of PINGs"
    assert grown < 16 * 2**20, f"the server grew by {grown} bytes while {sent} bytes of PINGs came in"
