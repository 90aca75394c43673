"""Run a module under tracemalloc and write where its memory is, for `reconcile.py --trace-memory`.

    python bench/memtrace.py OUT_PREFIX -m kubeserve.cli run --debug

Tracing costs memory and time of its own, so it is never in the operator's normal path: only this
wrapper starts it. It writes the top allocations by file and line (and by file) to
`OUT_PREFIX-<label>.txt`:

- `usr1-<n>` on each SIGUSR1 (the benchmark sends one at the end of each phase, once `OUT_PREFIX-armed`
  exists);
- `peak`, rewritten each time the traced total passes its last written peak by `PEAK_STEP`, so the
  last one shows what was held at (about) the peak, during a burst that no signal can time;
- `exit` when the process exits normally (SIGTERM: kopf stops, and the interpreter exits).
"""

from __future__ import annotations

import atexit
import runpy
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from types import FrameType

TOP = 40
FRAMES = 1
"""One frame per allocation: the line that allocated, at the least overhead (more frames, more memory)."""
PEAK_STEP = 4 * 1024 * 1024
POLL_SECONDS = 1.0
FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
)


def write(prefix: str, label: str) -> None:
    """The top allocation sites now, by line and by file, with the traced total and peak."""
    snapshot = tracemalloc.take_snapshot().filter_traces(FILTERS)
    current, peak = tracemalloc.get_traced_memory()
    now = time.strftime("%H:%M:%S")
    lines = [f"{label} at {now}: traced {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"]
    for group in ("lineno", "filename"):
        stats = snapshot.statistics(group)
        lines.append(f"\n== top {TOP} by {group} (of {sum(s.size for s in stats) / 2**20:.1f} MiB) ==")
        for stat in stats[:TOP]:
            frame = stat.traceback[0]
            where = f"{frame.filename}:{frame.lineno}" if group == "lineno" else frame.filename
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {where}")
    Path(f"{prefix}-{label}.txt").write_text("\n".join(lines) + "\n")


def follow_peak(prefix: str) -> None:
    """Write a snapshot whenever the traced total has grown by PEAK_STEP since the last one written."""
    written = 0
    while True:
        time.sleep(POLL_SECONDS)
        current, _ = tracemalloc.get_traced_memory()
        if current > written + PEAK_STEP:
            write(prefix, "peak")
            written = current


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit(__doc__)
    prefix, module = sys.argv[1], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    tracemalloc.start(FRAMES)
    signals = iter(range(1, 10**6))

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        write(prefix, f"usr1-{next(signals)}")

    signal.signal(signal.SIGUSR1, on_usr1)
    Path(f"{prefix}-armed").touch()  # the benchmark signals only from now on: unhandled, SIGUSR1 kills
    atexit.register(write, prefix, "exit")
    threading.Thread(target=follow_peak, args=(prefix,), daemon=True).start()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
