"""The paper's attention analysis: the measures (measures.py: L1/L2 sparsity, noise-based hard-threshold
rank), the study of trained models (study.py: which models and their measures; capture.py: their
attention on test users; cache.py: one stored case, analysed once) and its tables (tables.py: Tables
2-3 beside the paper's, the ordering claims). Figures: figures.py.
"""

from .cache import *  # noqa: F401,F403
from .cache import __all__ as _cache
from .measures import *  # noqa: F401,F403
from .measures import __all__ as _measures
from .study import *  # noqa: F401,F403
from .study import __all__ as _study
from .tables import *  # noqa: F401,F403
from .tables import __all__ as _tables

__all__ = [*_measures, *_study, *_cache, *_tables]
