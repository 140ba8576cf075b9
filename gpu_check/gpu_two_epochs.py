"""Preflight of gpu_check/gpu_check.sh: two epochs of AE and AR through the plugin, on the device --gpu selects.

Not collected by a plain ``pytest`` (its folder is not in pytest.ini's ``testpaths``, and its name matches
neither ``test_*.py`` nor ``bench_*.py``); the script runs it by path:

    pytest gpu_check/gpu_two_epochs.py --gpu --results DIR

It checks the CUDA path end to end in seconds (device placement, masking and dropout on the device,
the loss, the optimiser, validation and test ranking, the record naming the GPU) before the long
cases start. The dataset is the embedded synthetic one unless ``GPU_CHECK_PREFLIGHT_DATASET`` names
another (the CPU rehearsal uses a smaller one).
"""

import math
import os

import pytest

from sarbench.cases import Scale, run_case

DATASET = os.environ.get("GPU_CHECK_PREFLIGHT_DATASET", "synthetic")
# Two epochs, validated each epoch, on the smoke subset of a real dataset (smoke.py).
TWO_EPOCHS = Scale("smoke", subset=True, max_epochs=2, patience=2)


@pytest.mark.parametrize("attention", ["AE", "AR"])
def test_two_epochs_on_the_selected_device(bench, attention):
    record = run_case(table="vanilla", dataset=DATASET, design="vanilla", attention=attention, seed=0,
                      scale=TWO_EPOCHS, device=bench.device, data=bench.data, store=bench.store,
                      checkpoints=bench.checkpoints, rerun=True)
    assert record.device == bench.device
    assert record.epochs == 2 and record.extra["stopped"] == "max_epochs", (record.epochs, record.extra["stopped"])
    assert record.metrics and all(math.isfinite(v) for v in record.metrics.values()), record.metrics
    assert len(record.extra["epoch_seconds"]) == 2
    assert record.extra["precision"] == "fp32"
    if bench.device.startswith("cuda"):
        assert record.gpu, "a CUDA record must name its GPU"
    else:
        assert record.gpu is None
