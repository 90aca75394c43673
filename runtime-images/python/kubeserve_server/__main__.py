"""`kubeserve-server` / `python -m kubeserve_server`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from kubeserve_server import logs
from kubeserve_server.config import parse_args
from kubeserve_server.model_fetch import ModelFetch


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    logs.configure(config.log_level)
    # Started before the server's imports (hence the import below), so that the download overlaps them.
    fetch = ModelFetch(config.storage_uri, config.model_dir) if config.storage_uri else None
    from kubeserve_server.server import run

    try:
        run(config, fetch)
    except OSError as error:  # a port taken, an unreadable certificate: say so, in the JSON log
        logging.getLogger("kubeserve_server").critical("cannot serve: %s", error)
        sys.exit(1)


if __name__ == "__main__":
    main()
