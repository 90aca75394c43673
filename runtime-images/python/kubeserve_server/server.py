"""Process wiring: the model, both listeners in one event loop, and the optional worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import uvicorn
import uvloop

from kubeserve_server import logs
from kubeserve_server.batching import Batcher
from kubeserve_server.config import ServerConfig
from kubeserve_server.dataplane import DataPlane
from kubeserve_server.grpc_http2 import GrpcServer, Limits
from kubeserve_server.grpc_v2 import InferenceServicer
from kubeserve_server.http_protocol import with_header_timeout
from kubeserve_server.metrics import Metrics
from kubeserve_server.model import model_class
from kubeserve_server.model_fetch import ModelFetch
from kubeserve_server.offload import Offload
from kubeserve_server.payload_log import PayloadLogger
from kubeserve_server.rest import RestApp
from kubeserve_server.scheduling import Scheduler

logger = logging.getLogger(__name__)

# The kubelet keeps at most this many bytes of a container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096
MODEL_INIT_MODE = "MODEL_INIT_MODE"
"""KServe's variable: `async` means the model directory appears after the server starts (a modelcar's
sidecar links it in), so the server waits for it, not ready, instead of failing at once."""
MODEL_DIR_WAIT_SECONDS = 120.0


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` stops it, then stops gRPC as well."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int, what: str, reuse_port: bool = False) -> socket.socket:
    """A listening socket; `reuse_port` lets each worker bind its own on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"{what} cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _grpc_address(config: ServerConfig) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.grpc_port}"


def grpc_tls(config: ServerConfig) -> ssl.SSLContext | None:
    """The gRPC port's TLS, from the same files as REST's: a client CA makes client certificates required."""
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    if config.tls_client_ca_file is not None:
        context.load_verify_locations(cafile=config.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(
    config: ServerConfig,
    http_socket: socket.socket,
    worker: _WorkerSlot | None = None,
    fetch: ModelFetch | None = None,
) -> bool:
    """Serve until SIGTERM or SIGINT, or until the model fails to load: False then, to exit 1.

    The model loads in the background; readiness waits for it.
    """
    model = model_class(config.model_format)(config.model_name, config.model_dir, config.model_version)
    metrics = Metrics(config.model_name)
    scheduler = Scheduler(config.container_concurrency, config.request_timeout)
    batcher = (
        Batcher(
            scheduler, config.max_batch_size, config.max_batch_latency_ms / 1000, metrics.batch_size.observe
        )
        if config.max_batch_size is not None and config.max_batch_latency_ms is not None
        else None
    )
    dataplane = DataPlane(model, worker.all_loaded if worker else lambda: True, scheduler, batcher)
    payload_logger = (
        PayloadLogger(
            config.log_payload_url,
            config.model_name,
            metrics.payload_events_dropped,
            mode=config.log_payload_mode,
        )
        if config.log_payload_url
        else None
    )

    offload = Offload()
    grpc_server = GrpcServer(
        InferenceServicer(dataplane, metrics, payload_logger, offload).methods(),
        Limits(config.max_request_size, config.header_timeout, config.body_timeout),
    )
    # Workers share the port on purpose; a lone server must fail loudly on a taken port.
    grpc_socket = bind(config.host, config.grpc_port, "gRPC", reuse_port=config.workers > 1)

    http = _UvicornServer(
        uvicorn.Config(
            RestApp(
                dataplane, metrics, config.max_request_size, payload_logger, offload, config.body_timeout
            ),
            http=with_header_timeout(config.header_timeout),
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            # Idle TLS keep-alive clients can hold a graceful shutdown open: stay in the pod's grace period.
            timeout_graceful_shutdown=10,
            ssl_certfile=config.tls_cert_file,
            ssl_keyfile=config.tls_key_file,
            ssl_ca_certs=str(config.tls_client_ca_file) if config.tls_client_ca_file else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls_client_ca_file else ssl.CERT_NONE,
        )
    )
    loop = asyncio.get_running_loop()
    # A worker hears only its supervisor: a Ctrl-C reaches the whole process group, and the
    # terminal's SIGINT beside the supervisor's SIGTERM would count as a second signal.
    for signum in (signal.SIGTERM, signal.SIGINT) if worker is None else (signal.SIGTERM,):
        loop.add_signal_handler(signum, _on_signal, http, grpc_server, dataplane, config.drain_seconds)

    await grpc_server.start(grpc_socket, grpc_tls(config))
    if payload_logger is not None:
        payload_logger.start()
    load = asyncio.create_task(_load(dataplane, config, http, worker, fetch))
    scheme = "https" if config.tls else "http"
    logger.info(
        "serving model %r (%s) on %s://%s:%d and gRPC %s",
        config.model_name,
        config.model_format,
        scheme,
        config.host,
        config.http_port,
        _grpc_address(config),
    )
    try:
        await http.serve(sockets=[http_socket])
    finally:
        await grpc_server.stop(grace=5)
        offload.close()
        scheduler.close()
        if payload_logger is not None:
            await payload_logger.stop()
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
    return dataplane.load_error is None


def _on_signal(
    http: uvicorn.Server, grpc_server: GrpcServer, dataplane: DataPlane, drain_seconds: float
) -> None:
    """Drain first, then stop gracefully; a second signal, or one while not ready, stops at once.

    The kubelet signals as it marks the endpoint terminating, but kube-proxy routes to it until its
    next sync: a server that stopped listening at once would refuse those connections. While
    draining, readiness says no and both listeners serve as usual, but REST keep-alive ends.
    Nothing is routed to a server that is not ready (still loading, or already draining), so it has
    nothing to drain. gRPC's connections get GOAWAY, idle ones at once, busy ones after their next
    answer, as do those opened while draining.
    """
    if drain_seconds == 0 or not dataplane.ready():
        http.should_exit = True
        return
    dataplane.drain()
    # Keep-alive clients would go on sending here, past the Service that no longer routes to us:
    # close the idle connections now; busy ones close after their response, which (like every
    # response while draining) says `Connection: close`, so clients reconnect elsewhere.
    for connection in list(http.server_state.connections):
        connection.shutdown()
    grpc_server.drain()
    logger.info("draining for %gs: not ready, still serving, then stopping", drain_seconds)
    asyncio.get_running_loop().call_later(drain_seconds, setattr, http, "should_exit", True)


async def _load(
    dataplane: DataPlane,
    config: ServerConfig,
    http: uvicorn.Server,
    worker: _WorkerSlot | None,
    fetch: ModelFetch | None,
) -> None:
    """Load the model; if it fails, leave the reason for the kubelet and stop serving.

    A server that stayed up, not ready, would hide the reason in a cluster: the kubelet reports only
    "containers with unready status" and probe failures go to Events, never to the pod's status.
    An exit puts the reason in the container's `lastState.terminated.message`, where the operator
    reads it into the InferenceService's condition, as KServe's own servers do.
    """
    failure = await _model_in_place(config.model_dir, fetch, dataplane) or await dataplane.load()
    if failure is None:
        if worker is not None:
            worker.mark_loaded()
        return
    dataplane.load_error = dataplane.load_error or failure
    write_termination_message(config.termination_log, failure)
    http.should_exit = True


async def _model_in_place(model_dir: Path, fetch: ModelFetch | None, dataplane: DataPlane) -> str | None:
    """Wait for the model's files: the server's own download, while the format's library is imported;
    else, with MODEL_INIT_MODE=async, the directory's appearance. The failure, if they never come."""
    if fetch is None:
        return await _model_dir_appeared(model_dir)
    failure, _ = await asyncio.gather(fetch.result(), dataplane.prepare())
    return failure


async def _model_dir_appeared(model_dir: Path) -> str | None:
    """With MODEL_INIT_MODE=async, wait for the model directory; the failure if it never comes."""
    if os.environ.get(MODEL_INIT_MODE) != "async":
        return None
    deadline = asyncio.get_running_loop().time() + MODEL_DIR_WAIT_SECONDS
    while not await asyncio.to_thread(model_dir.exists):
        if asyncio.get_running_loop().time() > deadline:
            return (
                f"model directory {model_dir} did not appear within {MODEL_DIR_WAIT_SECONDS:.0f} s "
                f"({MODEL_INIT_MODE}=async: the model's sidecar should have linked it)"
            )
        await asyncio.sleep(0.1)
    return None


def write_termination_message(path: Path, message: str) -> None:
    """Write `message`, cut to the kubelet's limit, where the kubelet reads a container's exit reason.

    Outside Kubernetes the file's directory is usually missing or not writable (/dev), and nobody
    would read the file either, so a failure to write it is no error.
    """
    data = message.encode()[:TERMINATION_MESSAGE_LIMIT].decode(errors="ignore").encode()
    try:
        path.write_bytes(data)
    except OSError as error:
        logger.debug("no termination message written to %s: %s", path, error)


@dataclass(frozen=True)
class _WorkerSlot:
    """One worker's place in the flags the workers share, one per worker, set once it has loaded.

    The workers accept from one socket, so a readiness probe may reach any of them: each says
    ready only when all have loaded, or traffic would reach a worker still loading.
    """

    loaded: ctypes.Array[ctypes.c_bool]
    index: int

    def mark_loaded(self) -> None:
        self.loaded[self.index] = True

    def all_loaded(self) -> bool:
        return all(self.loaded)


def _worker(config: ServerConfig, http_socket: socket.socket, worker: _WorkerSlot) -> None:
    logs.configure(config.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not uvloop.run(serve(config, http_socket, worker)):
        sys.exit(1)


def run(config: ServerConfig, fetch: ModelFetch | None = None) -> None:
    """One process per worker; the HTTP socket is bound once here and shared, gRPC's with SO_REUSEPORT.

    Exits 1 when the model fails to load. With workers, one that exits non-zero (its model failed
    to load) stops the others, and the server exits 1 all the same. The supervisor passes each
    SIGTERM or SIGINT on to the workers as SIGTERM: the first makes each drain, a second stops them.
    """
    http_socket = bind(config.host, config.http_port, "HTTP")
    if config.workers == 1:
        if not uvloop.run(serve(config, http_socket, fetch=fetch)):
            sys.exit(1)
        return
    # Workers are processes of their own: they start once the model is in place.
    failure = fetch.wait() if fetch is not None else None
    if failure is not None:
        write_termination_message(config.termination_log, failure)
        sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="kubeserve-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        context = multiprocessing.get_context("spawn")
        loaded = context.RawArray(ctypes.c_bool, config.workers)
        workers: list[BaseProcess] = [
            context.Process(
                target=_worker, args=(config, http_socket, _WorkerSlot(loaded, index)), name=f"worker-{index}"
            )
            for index in range(config.workers)
        ]
        for worker in workers:
            worker.start()

        def stop(signum: int, frame: object) -> None:
            for worker in workers:
                if worker.is_alive() and worker.pid is not None:
                    os.kill(worker.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("started %d workers: %s", len(workers), [worker.pid for worker in workers])
        failed = False
        running = list(workers)
        while running:
            exited = multiprocessing.connection.wait([worker.sentinel for worker in running])
            for worker in [worker for worker in running if worker.sentinel in exited]:
                worker.join()
                running.remove(worker)
                if worker.exitcode and not failed:
                    failed = True
                    logger.error(
                        "%s (pid %s) exited with %s; stopping the others",
                        worker.name,
                        worker.pid,
                        worker.exitcode,
                    )
                    stop(signal.SIGTERM, None)
    if failed:
        sys.exit(1)
