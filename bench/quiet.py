"""What every benchmark shares: a check that it ran alone, alternating runs, median and spread.

A ratio measured while something else used the cores is not a result (a back-translation ratio
once read 30.6x under load and 6.9x alone), so each benchmark samples the CPU time of every other
process over its runs and prints a verdict beside its numbers. Written here because no benchmark
library measures *other* processes' use of the machine.
"""

from __future__ import annotations

import os
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


def others_cpu_seconds() -> float:
    """CPU seconds used so far by every process but this one (its reaped children count as its own)."""
    return sum(
        process_cpu_seconds(int(entry.name))
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and int(entry.name) != os.getpid()
    )


class NoiseMonitor:
    """Started before the runs, read after them: how many cores the rest of the machine used."""

    def __init__(self) -> None:
        self.cpu, self.started = others_cpu_seconds(), time.monotonic()

    def verdict(self) -> str:
        others = (others_cpu_seconds() - self.cpu) / max(time.monotonic() - self.started, 1e-9)
        state = "NOISY: do not publish these numbers" if others > NOISE_LIMIT else "quiet"
        return f"other processes used {others:.2f} cores on average during the runs: {state}"


def spread(values: list[float], unit: str = "") -> str:
    """``median unit (min–max, n runs)``."""
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f}, {len(values)} runs)"
