"""The model's download by the server itself, for a runtime without a storage initializer.

An init container must finish, and the kubelet must notice it (its next relist, up to a second
later), before the server's container even starts; that sits on every cold start. Here the server
starts the initializer's own command, `kubeserve-storage <uri> <model dir>`, as a child process
first thing, so the download overlaps the interpreter's start, the server's imports and the format
library's import, on another core where there is one. Credentials reach it as they would reach the
initializer: through the container's environment, which the child inherits.

Only the standard library is imported here: this module runs before the server's own imports.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

STORAGE_URI_ENV = "STORAGE_URI"
"""KServe's variable naming a model a runtime fetches itself."""


class ModelFetch:
    """A running download into the model directory; `result` is None once the model is in place."""

    def __init__(self, uri: str, model_dir: Path) -> None:
        self.uri = uri
        self._last_error = ""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kubeserve_storage", uri, str(model_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self._relay = threading.Thread(target=self._relay_log, name="model-fetch-log", daemon=True)
        self._relay.start()

    def _relay_log(self) -> None:
        """Pass the child's lines on as the server's own log records, keeping its error line."""
        assert self._process.stderr is not None
        for line in self._process.stderr:
            text = line.rstrip()
            level = logging.INFO
            if "error:" in text:
                self._last_error = text.partition("error:")[2].strip()
                level = logging.ERROR
            logger.log(level, "%s", text, extra={"storage_uri": self.uri})

    def wait(self) -> str | None:
        """Block until the download ends: None when the model is in place, else why not."""
        code = self._process.wait()
        self._relay.join()
        if code == 0:
            return None
        return self._last_error or f"kubeserve-storage exited with {code} while fetching {self.uri}"

    async def result(self) -> str | None:
        """`wait`, off the event loop."""
        return await asyncio.to_thread(self.wait)
