"""Shared bits of the benchmarks in scripts/bench/."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_lines(second_line_suffix: str = "") -> list[str]:
    """Two report lines describing this machine: cores, CPU model, kernel and current load."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: nproc={os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {cpu}",
        f"         {platform.system()} {platform.release()}, load average {load}{second_line_suffix}",
    ]
