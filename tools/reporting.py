"""What the scripts in tools/ share: the machine's name and how a report is written.

Each script is run as ``python tools/NAME.py``, so this module is importable as a sibling.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(text: str, out: str | Path | None) -> None:
    """Print ``text``; unless ``out`` is empty or ``-``, also write it there (UTF-8, folders made)."""
    print(text)
    if out and str(out) != "-":
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"report written to {path}")
