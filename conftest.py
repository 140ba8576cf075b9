"""Root conftest: hypothesis profiles. Options, markers and fixtures live in sarbench/plugin.py."""

import os

from hypothesis import HealthCheck, settings

# Deterministic in CI (no example database, derandomized); default settings elsewhere.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
