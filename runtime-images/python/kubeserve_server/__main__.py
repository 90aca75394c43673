"""`kubeserve-server` / `python -m kubeserve_server`."""

from __future__ import annotations

from collections.abc import Sequence

from kubeserve_server import logs
from kubeserve_server.config import parse_args
from kubeserve_server.server import run


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    logs.configure(config.log_level)
    run(config)


if __name__ == "__main__":
    main()
