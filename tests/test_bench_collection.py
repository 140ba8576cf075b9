"""Every function pytest collects from ``bench/`` must be a case of that module, not a helper it imports.

``pytest.ini`` collects functions named ``vanilla``, ``direction``, ``design`` and ``hf``, and pytest
matches those names as prefixes: a helper imported into a bench module under such a name (say
``direction_...``) would be collected as a test and fail at setup for want of fixtures.
"""
import configparser
import fnmatch
import importlib.util
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def collected_patterns() -> list[str]:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    return ini["pytest"]["python_functions"].split()


def is_collected(name: str, patterns: list[str]) -> bool:
    """pytest's rule: a pattern matches as a name prefix or as a glob."""
    return any(name.startswith(p) or fnmatch.fnmatch(name, p) for p in patterns)


@pytest.mark.parametrize("path", sorted([*(ROOT / "bench").glob("test_*.py"), *(ROOT / "bench").glob("bench_*.py")]), ids=lambda p: p.name)
def test_bench_modules_collect_only_their_own_cases(path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    patterns = collected_patterns()
    foreign = [name for name, obj in vars(module).items()
               if inspect.isfunction(obj) and is_collected(name, patterns) and obj.__module__ != module.__name__]
    assert not foreign, f"{path.name} imports {foreign}, which pytest would collect as tests; rename them"


def test_the_rule_catches_an_imported_helper():
    assert is_collected("direction_found", collected_patterns())
    assert not is_collected("describe_direction", collected_patterns())
