"""`python -m kubeserve_activator`: the activator against the cluster it runs in (or a kubeconfig's)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kubeserve_activator.cluster import following
from kubeserve_activator.config import ActivatorConfig
from kubeserve_activator.idling import idle_scaling
from kubeserve_activator.kube_api import KubeApi, from_kubeconfig, in_cluster
from kubeserve_activator.server import start

log = logging.getLogger("kubeserve_activator")


class JSONFormatter(logging.Formatter):
    """One JSON object per line on stderr, as kubeserve-server logs, for the cluster's log collector."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def parse_args(argv: Sequence[str] | None) -> tuple[ActivatorConfig, argparse.Namespace]:
    defaults = ActivatorConfig()
    parser = argparse.ArgumentParser(prog="kubeserve_activator", description=__doc__)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port, help="proxied HTTP traffic")
    parser.add_argument(
        "--grpc-port", type=int, default=defaults.grpc_port, help="proxied gRPC (HTTP/2 cleartext) traffic"
    )
    parser.add_argument(
        "--admin-port", type=int, default=defaults.admin_port, help="/healthz, /readyz, /metrics"
    )
    parser.add_argument(
        "--hold-seconds", type=float, default=defaults.hold_seconds, help="deadline of a held request"
    )
    parser.add_argument("--retry-after-seconds", type=int, default=defaults.retry_after_seconds)
    parser.add_argument("--max-held-per-service", type=int, default=defaults.max_held_per_target)
    parser.add_argument("--max-held-total", type=int, default=defaults.max_held_total)
    parser.add_argument("--cluster-domain", default=defaults.cluster_domain)
    parser.add_argument(
        "--scrape-interval-seconds",
        type=float,
        default=defaults.scrape_interval_seconds,
        help="idle scale-down: how often the Ready pods' /metrics are read (a group goes to 0 replicas "
        "once idle for its Service's serving.kubeserve.io/idle-window-seconds)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="follow Services of this namespace only (repeat for several; default: all namespaces)",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="credentials for tests and development (default: the pod's)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for flag in ("hold_seconds", "max_held_per_service", "max_held_total", "scrape_interval_seconds"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    config = ActivatorConfig(
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        admin_port=args.admin_port,
        hold_seconds=args.hold_seconds,
        retry_after_seconds=args.retry_after_seconds,
        max_held_per_target=args.max_held_per_service,
        max_held_total=args.max_held_total,
        cluster_domain=args.cluster_domain,
        scrape_interval_seconds=args.scrape_interval_seconds,
    )
    return config, args


async def run(config: ActivatorConfig, args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    api = KubeApi(from_kubeconfig(args.kubeconfig) if args.kubeconfig else in_cluster())
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        async with following(api, args.namespaces) as side:
            running = await start(
                config,
                side.targets,
                side.endpoints,
                side.waker,
                lambda: all(follower.listed.is_set() for follower in side.followers),
            )
            log.info(
                "activator listening on %s:%d, gRPC on %d, admin on %d",
                config.host,
                running.port,
                running.grpc_port,
                running.admin_port,
            )
            try:
                async with idle_scaling(config, side, running):
                    await stop.wait()
            finally:
                await running.close()
    finally:
        await api.close()


def main(argv: Sequence[str] | None = None) -> None:
    config, args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    asyncio.run(run(config, args))


if __name__ == "__main__":
    main()
