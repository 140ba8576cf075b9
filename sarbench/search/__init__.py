"""Hyperparameter search on Ray Tune (the ``tune`` extra): the paper's grids, ASHA or a plain grid, tuned presets.

    from sarbench.search import SPACES, SearchConfig, tune_case
    result = tune_case(SearchConfig("ml-1m", "ce", "AR", SPACES["loss_ce"].for_attention("AR")))

Modules: :mod:`.spaces` (named spaces, validation), :mod:`.trial` (the search protocol and the
function Ray runs), :mod:`.tune` (the driver), :mod:`.tuned` (the pipeline and preset files).
Importing this package does not import Ray; running a search does.
"""

from .spaces import SPACES, Space, SpaceError, check_space, get_space, load_space, with_axes
from .defaults import METRIC
from .trial import SearchConfig
from .tune import Resources, SearchOutcome, TuneUnavailable, run_search
from .tuned import TunedPreset, TuneResult, read_preset, tune_case, tuned_case_kwargs, tuned_overrides

__all__ = ["METRIC", "SPACES", "Resources", "SearchConfig", "SearchOutcome", "Space", "SpaceError", "TuneResult",
           "TuneUnavailable", "TunedPreset", "check_space", "get_space", "load_space", "read_preset", "run_search",
           "tune_case", "tuned_case_kwargs", "tuned_overrides", "with_axes"]
