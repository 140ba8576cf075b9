"""Names and defaults shared by the search modules and the command line (importing it is cheap)."""

METRIC = "valid_R@10"  # what a trial reports, the scheduler reads and the best-trial rule compares
SCHEDULERS = ("asha", "grid")
BEST_SCOPES = ("last", "all")  # Ray's scopes of ResultGrid.get_best_result that we offer

# The authors' ASHA (protocol.md section 5): AsyncHyperBandScheduler(max_t=40, grace_period=5,
# reduction_factor=2) on training_iteration, one report per validation, a validation every 5 epochs.
AUTHORS_MAX_T = 40
AUTHORS_GRACE_PERIOD = 5
AUTHORS_REDUCTION_FACTOR = 2.0
AUTHORS_EVAL_EVERY = 5

PRESETS_ENV = "SARBENCH_PRESETS"  # folder of tuned preset files
DEFAULT_PRESETS = "presets"


def default_scheduler(design: str) -> str:
    """The scheduler a search of ``design`` runs by default: a plain grid for the vanilla network (the
    paper's Section 5.1 tuned the vanilla models by grid search), the authors' ASHA for everything else."""
    return "grid" if design == "vanilla" else "asha"
