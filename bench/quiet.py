"""What every benchmark shares: a check that it ran alone, alternating runs, median and spread.

A ratio measured while something else used the cores is not a result (a back-translation ratio
once read 30.6x under load and 6.9x alone), so each benchmark samples the CPU time of every other
process over its runs and prints a verdict beside its numbers. Written here because no benchmark
library measures *other* processes' use of the machine.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path

NOISE_LIMIT = 0.2
"""Cores' worth of CPU other processes may use on average before the result is called noisy."""


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot (``/proc/stat``'s first line)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU seconds and those of every child it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class NoiseMonitor:
    """Started before the runs, read after them: how many cores the rest of the machine used.

    Counted from the machine's busy time less this process tree's own, so a process that started
    and ended between the two readings counts too (summing ``/proc/<pid>`` at the end misses it:
    a test run that came and went during a benchmark once read as "quiet")."""

    def __init__(self) -> None:
        self.busy, self.own, self.started = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()

    def verdict(self) -> str:
        busy, own = machine_busy_seconds() - self.busy, own_cpu_seconds() - self.own
        others = max(busy - own, 0.0) / max(time.monotonic() - self.started, 1e-9)
        state = "NOISY: do not publish these numbers" if others > NOISE_LIMIT else "quiet"
        return f"other processes used {others:.2f} cores on average during the runs: {state}"


def spread(values: list[float], unit: str = "") -> str:
    """``median unit (min–max, n runs)``."""
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f}, {len(values)} runs)"
