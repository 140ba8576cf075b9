"""Ray Tune callbacks of the search driver (imported only where Ray Tune is installed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ray import tune


class SchedulerState(tune.Callback):
    """Keeps the scheduler's state (ASHA's rung records) in the experiment's checkpoints.

    ``Tuner.restore`` rebuilds the scheduler from the copy pickled when the search started, with
    empty rungs (ray-project/ray#30838): after a resume, trials that had not reached a rung would be
    compared with nothing and all continue. Tune saves and restores the state of callbacks with the
    experiment, so this callback carries the scheduler's own ``save``/``restore`` payload there.
    """

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def get_state(self) -> dict:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scheduler.pkl"
            self.scheduler.save(str(path))
            return {"scheduler": path.read_bytes()}

    def set_state(self, state: dict) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scheduler.pkl"
            path.write_bytes(state["scheduler"])
            self.scheduler.restore(str(path))
