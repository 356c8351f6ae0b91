"""Child processes under a wall-clock timeout and a memory cap: how each ended, its wall time, its own peak RSS.

Linux only (``os.wait4``, ``resource`` in the launcher, ``/proc`` for the memory watchdog).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .units import size_text


@dataclasses.dataclass
class Run:
    """One child process: how it ended, its wall time and its own peak RSS."""

    status: str  # "ok", "timeout (> N s)", "out of memory (...)", "error: <last line of stderr>"
    wall_s: float
    peak_rss_mb: float | None
    stdout: str = ""
    stdout_bytes: int = 0
    stdout_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MiB from /proc (VmRSS, VmHWM); zeros when it is gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


# A process's peak RSS as Linux accounts it (ru_maxrss) includes the memory of the process that
# forked it, up to its exec. The benchmark's own process holds generated zoos and pandas, so its
# children are started by this small launcher (a Python without site-packages, ~10 MiB): the
# command's ru_maxrss is then its own. The launcher also times the command itself (no
# interpreter start of its own, no polling step) and limits its address space.
_LAUNCHER = """
import json, os, resource, subprocess, sys, time
out, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[3:])
with open(out, "w") as fh:
    fh.write(f"{proc.pid}\\n")
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
with open(out, "a") as fh:
    fh.write(json.dumps({"wall": wall, "status": status, "maxrss_kb": usage.ru_maxrss}) + "\\n")
"""


def run_child(cmd: list[str], *, timeout: float, mem_cap_mb: float, env: dict | None = None,
              stdout: str = "capture") -> Run:
    """Run ``cmd``; kill it past ``timeout`` seconds or ``mem_cap_mb`` MiB resident.

    ``stdout``: ``"capture"`` keeps the text, ``"count"`` only counts bytes and lines (a
    streamed prediction of 10^9 cells needs no disk). The command runs under a small
    launcher (see ``_LAUNCHER``), which reports its wall time and its own peak RSS
    (``os.wait4``), so children measured one after the other do not mix and the benchmark's
    memory is not counted. Its address space is limited to twice the cap plus 2 GiB (virtual
    overhead), a backstop for single huge allocations; the cap itself is watched here.
    """
    err = tempfile.TemporaryFile()
    fd, report = tempfile.mkstemp(prefix="recsys-scale-run-", suffix=".txt")
    os.close(fd)
    counts = {"bytes": 0, "lines": 0}
    chunks: list[bytes] = []

    def reader(pipe):
        for block in iter(lambda: pipe.read(1 << 20), b""):
            counts["bytes"] += len(block)
            counts["lines"] += block.count(b"\n")
            if stdout == "capture":
                chunks.append(block)

    limit = int((2 * mem_cap_mb + 2048) * 2**20)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", _LAUNCHER, report, str(limit), *cmd],
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    thread = threading.Thread(target=reader, args=(proc.stdout,), daemon=True)
    thread.start()
    killed, child, peak = None, None, 0.0
    try:
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - t0
            if child is None:
                text = Path(report).read_text()
                child = int(text.split()[0]) if text.endswith("\n") else None
            rss, hwm = _memory_mb(child) if child else (0.0, 0.0)
            peak = max(peak, hwm)
            if killed is None and (rss > mem_cap_mb or elapsed > timeout):
                killed = (f"out of memory (> {size_text(mem_cap_mb)} resident, killed)" if rss > mem_cap_mb
                          else f"timeout (> {timeout:g} s)")
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01 if elapsed < 5 else 0.05)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the child down too
        os.killpg(proc.pid, signal.SIGKILL)
        os.wait4(proc.pid, 0)
        Path(report).unlink(missing_ok=True)
        raise
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    thread.join(timeout=10)
    proc.stdout.close()
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    err.close()
    lines = Path(report).read_text().splitlines()
    Path(report).unlink(missing_ok=True)
    done = json.loads(lines[1]) if len(lines) > 1 else None
    if done:  # the launcher saw the command end: its own figures
        code, wall, peak = os.waitstatus_to_exitcode(done["status"]), done["wall"], done["maxrss_kb"] / 1024
    else:  # killed here (or the launcher failed): the last polled high-water mark
        code = proc.returncode
    if killed:
        result = killed
    elif code == 0:
        result = "ok"
    elif re.search(r"MemoryError|Unable to allocate|std::bad_alloc|Cannot allocate memory|out of memory", stderr):
        result = "out of memory (" + _last_line(stderr, r"MemoryError|allocate|bad_alloc|out of memory") + ")"
    elif code == -signal.SIGKILL:
        result = "out of memory (killed by the system)"
    else:
        result = "error: " + _last_line(stderr)
    return Run(result, wall, peak or None, b"".join(chunks).decode("utf-8", "replace"), counts["bytes"],
               counts["lines"])


def _last_line(text: str, pattern: str | None = None, width: int = 160) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if pattern:
        lines = [ln for ln in lines if re.search(pattern, ln)] or lines
    line = lines[-1] if lines else "(no message)"
    return line if len(line) <= width else line[:width - 3] + "..."


def median_wall(cmd: list[str], repeats: int, env: dict, timeout: float, mem_cap_mb: float) -> tuple[float | None, str]:
    """Median wall time of ``repeats`` runs (None and the status if one fails)."""
    times = []
    for _ in range(repeats):
        run = run_child(cmd, timeout=timeout, mem_cap_mb=mem_cap_mb, env=env)
        if not run.ok:
            return None, run.status
        times.append(run.wall_s)
    return float(np.median(times)), "ok"

