"""`kubeserve run` as a subprocess of a test, logging to a file, stopped (by its own PID) afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by its own PID, then SIGKILL if it has not ended within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start(kubeconfig: str, log_path: Path, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """Appends to the log, so a restarted operator's log follows the earlier one's."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kubeserve.cli", "run", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | {"KUBECONFIG": kubeconfig},
        )


@contextmanager
def running_operator(kubeconfig: str, log_path: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = _start(kubeconfig, log_path, args)
    try:
        yield process
    finally:
        stop_process(process)


class SessionOperator:
    """The session's clusterwide operator, which a test can stop while it runs operators of its own."""

    def __init__(self, kubeconfig: str, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = _start(self.kubeconfig, self.log_path, ())

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Nobody but the test's own operators reconciles meanwhile; started again afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()
