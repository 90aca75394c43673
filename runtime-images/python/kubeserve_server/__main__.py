"""`kubeserve-server` / `python -m kubeserve_server`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from kubeserve_server import logs
from kubeserve_server.config import parse_args
from kubeserve_server.model_fetch import ModelFetch


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    logs.configure(config.log_level)
    # Started before the server's imports, so that the download overlaps them.
    fetch = ModelFetch(config.storage_uri, config.model_dir) if config.storage_uri else None
    # gRPC's C core writes its own plain-text lines to stderr; keep them to errors so the log stays
    # JSON. It reads the variable when grpc is first imported, hence the import below.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from kubeserve_server.server import run

    try:
        run(config, fetch)
    except OSError as error:  # a port taken, an unreadable certificate: say so, in the JSON log
        logging.getLogger("kubeserve_server").critical("cannot serve: %s", error)
        sys.exit(1)


if __name__ == "__main__":
    main()
