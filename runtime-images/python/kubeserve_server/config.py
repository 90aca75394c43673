"""The server's command-line flags. Their names are a contract: ClusterServingRuntimes pass them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubeserve_server.model import FORMATS
from kubeserve_server.model_fetch import STORAGE_URI_ENV

DEFAULT_MAX_REQUEST_SIZE = 64 * 1024 * 1024
# Kubernetes' default terminationMessagePath: the kubelet reports this file's text when the container exits.
DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
# Covers kube-proxy's next sync after a pod starts terminating, well inside the default 30 s grace period.
DEFAULT_DRAIN_SECONDS = 5.0
# A request's headers are a few hundred bytes: any live client sends them well inside this.
DEFAULT_HEADER_TIMEOUT = 10.0
# The whole body: the default 64 MiB limit arrives within it at about 1 MiB/s.
DEFAULT_BODY_TIMEOUT = 60.0
# KServe's batcher fills in these when only one of maxBatchSize and maxLatency is given.
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_LATENCY_MS = 5000.0
LOG_PAYLOAD_MODES = ("all", "request", "response")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    model_name: str
    model_dir: Path = Path("/mnt/models")
    storage_uri: str | None = None
    model_format: str = "sklearn"
    model_version: str | None = None
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    workers: int = 1
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    log_payload_url: str | None = None
    log_level: str = "INFO"
    termination_log: Path = DEFAULT_TERMINATION_LOG
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    container_concurrency: int = 0
    request_timeout: float = 0.0
    log_payload_mode: str = "all"
    max_batch_size: int | None = None
    max_batch_latency_ms: float | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubeserve-server",
        description="Serve one model over the Open Inference Protocol (REST and gRPC) and the v1 protocol.",
    )
    p.add_argument("--model_name", "--model-name", required=True, help="the name clients use in URLs")
    p.add_argument("--model_dir", "--model-dir", type=Path, default=Path("/mnt/models"))
    p.add_argument(
        "--storage_uri",
        "--storage-uri",
        default=os.environ.get(STORAGE_URI_ENV) or None,
        help=f"fetch the model from here into --model_dir at start, as the storage initializer would "
        f"(default: ${STORAGE_URI_ENV}); the server is ready once it is fetched and loaded",
    )
    p.add_argument("--model_format", "--model-format", choices=sorted(FORMATS), default="sklearn")
    p.add_argument("--model_version", "--model-version", default=None, help="served at /versions/<this>")
    p.add_argument("--host", default="0.0.0.0", help="address both listeners bind")
    p.add_argument("--http_port", "--http-port", type=_port, default=8080)
    p.add_argument("--grpc_port", "--grpc-port", type=_port, default=8081)
    p.add_argument("--workers", type=_positive, default=1, help="server processes sharing both ports")
    p.add_argument(
        "--max_request_size",
        "--max-request-size",
        type=_positive,
        default=DEFAULT_MAX_REQUEST_SIZE,
        help="largest request body in bytes (REST and gRPC); larger ones get 413",
    )
    p.add_argument(
        "--tls_cert_file", "--tls-cert-file", type=Path, help="PEM certificate: serve TLS on both ports"
    )
    p.add_argument("--tls_key_file", "--tls-key-file", type=Path, help="PEM private key for --tls_cert_file")
    p.add_argument(
        "--tls_client_ca_file",
        "--tls-client-ca-file",
        type=Path,
        help="PEM CA bundle: require client certificates",
    )
    p.add_argument(
        "--log_payload_url", "--log-payload-url", help="CloudEvents sink for request/response payloads"
    )
    p.add_argument(
        "--log_level", "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    p.add_argument(
        "--termination_log",
        "--termination-log",
        type=Path,
        default=DEFAULT_TERMINATION_LOG,
        help="where the reason a model failed to load goes before the server exits; skipped if unwritable",
    )
    p.add_argument(
        "--drain_seconds",
        "--drain-seconds",
        type=_non_negative,
        default=DEFAULT_DRAIN_SECONDS,
        help="after SIGTERM, answer not ready but keep serving this long before shutting down: the kubelet "
        "signals as the endpoint starts terminating, and kube-proxy stops routing to it only on its next "
        "sync. The default covers that, well inside the default 30 s grace period; 0 stops at once",
    )
    p.add_argument(
        "--header_timeout",
        "--header-timeout",
        type=_positive_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds for a REST request's headers to arrive, from the connection's start or the "
        "request's first byte; late ones get 408 and the connection is closed. gRPC: for the TLS "
        "handshake, the HTTP/2 preface and each request's header block",
    )
    p.add_argument(
        "--body_timeout",
        "--body-timeout",
        type=_positive_seconds,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds for a REST request's whole body (or a gRPC request's message) to arrive once it "
        "is read; late ones get 408 (gRPC: DEADLINE_EXCEEDED)",
    )
    p.add_argument(
        "--container_concurrency",
        "--container-concurrency",
        type=_non_negative_int,
        default=0,
        help="most inference requests served at once by each server process; others wait their turn "
        "(first come, first served). 0 is no limit. Health, readiness, metadata and metrics never wait",
    )
    p.add_argument(
        "--request_timeout",
        "--request-timeout",
        type=_non_negative,
        default=0.0,
        help="seconds an inference request may spend waiting for its turn plus in the model call (its "
        "body's arrival has --body_timeout): past it REST answers 504 (503 with Retry-After if it was "
        "still waiting for its turn) and gRPC DEADLINE_EXCEEDED. Model calls then run in threads. "
        "0 is no limit",
    )
    p.add_argument(
        "--log_payload_mode",
        "--log-payload-mode",
        choices=LOG_PAYLOAD_MODES,
        default="all",
        help="what --log_payload_url receives: requests and responses, or only one of them",
    )
    p.add_argument(
        "--max_batch_size",
        "--max-batch-size",
        type=_positive,
        default=None,
        help="batch concurrent predict requests into one model call of up to this many rows "
        f"(default {DEFAULT_MAX_BATCH_SIZE} when only --max_batch_latency_ms is given); off if neither is",
    )
    p.add_argument(
        "--max_batch_latency_ms",
        "--max-batch-latency-ms",
        type=_positive_seconds,
        default=None,
        help="milliseconds a batch waits for more requests after its first "
        f"(default {DEFAULT_MAX_BATCH_LATENCY_MS:g} when only --max_batch_size is given)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    p = parser()
    args = p.parse_args(argv)
    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        p.error("--tls_cert_file and --tls_key_file go together")
    if args.tls_client_ca_file is not None and args.tls_cert_file is None:
        p.error("--tls_client_ca_file needs --tls_cert_file and --tls_key_file")
    if args.max_batch_size is not None or args.max_batch_latency_ms is not None:
        # Either flag turns batching on, as either of KServe's batcher fields does.
        args.max_batch_size = args.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        args.max_batch_latency_ms = args.max_batch_latency_ms or DEFAULT_MAX_BATCH_LATENCY_MS
    return ServerConfig(**vars(args))
