"""What a running benchmark case shows: one live progress line, and a log line per epoch.

The pytest plugin's ``run`` fixture (sarbench/plugin.py) reports each training case through
:class:`Progress` and appends every epoch to ``<results>/logs/<case>.log`` the moment it ends, so a
killed run still shows how far each case got.
"""

from __future__ import annotations

import time
from pathlib import Path


class Progress:
    """Which case is training, its epoch and validation metric: one updating line on a terminal, a
    plain line every minute (and at the end) in a log. Silent under xdist workers and with -qq."""

    def __init__(self, config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.tty = bool(self.reporter and getattr(self.reporter, "isatty", False))
        self.quiet = hasattr(config, "workerinput") or config.get_verbosity() < -1 or self.reporter is None
        self.case, self.last_line, self.shown = "", 0.0, False

    def start(self, case: dict):
        model = case.get("model", "sar")
        name = case.get("design", "") if model == "sar" else model
        self.case = f"{case.get('dataset')} {name}-{case.get('attention')} seed {case.get('seed', 0)}"
        self.last_line, self.shown = time.monotonic(), False

    def epoch(self, row: dict):
        if self.quiet:
            return
        valid = row.get("valid") or {}
        line = (f"training {self.case}: epoch {row['epoch']} loss {row['loss']:.4f} ({row['wall_time']:.1f}s)"
                + (f" valid R@10 {valid['R@10']:.4f}" if "R@10" in valid else ""))
        if self.tty:
            self.reporter.rewrite(line, erase=True)
            self.shown = True
        elif row["epoch"] == 1 or time.monotonic() - self.last_line >= 60:
            self.reporter.write_line(line)
            self.last_line = time.monotonic()

    def done(self):
        if self.tty and self.shown:
            self.reporter.rewrite("", erase=True)
            self.shown = False


def epoch_log_path(results: Path, case: dict) -> Path:
    """``<results>/logs/<table>_<dataset>-<design>-<attention>.s<seed>.log`` for a case's arguments."""
    name = "-".join(str(case.get(k, "")) for k in ("dataset", "design", "attention"))
    return Path(results) / "logs" / f"{case.get('table', 'case')}_{name}.s{case.get('seed', 0)}.log"


def epoch_line(row: dict) -> str:
    """One epoch of a history row as a log line: epoch, loss, times, validation metrics."""
    line = f"epoch {row['epoch']:>4} loss {row['loss']:.4f} train {row['epoch_time']:.2f}s all {row['wall_time']:.2f}s"
    valid = row.get("valid") or {}
    shown = [f"{k} {valid[k]:.4f}" for k in ("R@10", "N@10") if k in valid]
    return line + (" valid " + " ".join(shown) if shown else "")


def append_epoch_line(path: Path, row: dict) -> None:
    """Append the epoch's line to ``path`` and close it (nothing waits in a buffer if the run is killed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {epoch_line(row)}\n")
