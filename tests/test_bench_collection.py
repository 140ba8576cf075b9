"""Bench cases are collected by module, not by name: a new case under any name runs, a helper never does.

Bench cases are named after the paper table they fill (``vanilla[...]``, ``direction[...]``). Listing
those names in ``python_functions`` left a case under a new name silently uncollected, and made
pytest collect an imported helper whose name began with one of them. Now ``pytest.ini`` names the
case modules (``sarbench_case_modules = bench/test_*.py``) and the plugin collects every public
function defined in such a module (sarbench/plugin.py); ``python_functions`` is pytest's ``test_*``.
"""
import configparser
import importlib.util
import inspect
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from sarbench.plugin import is_case

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def _ini() -> configparser.SectionProxy:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    return ini["pytest"]


def test_cases_are_collected_by_module_not_by_name():
    assert _ini()["python_functions"].split() == ["test_*"]
    assert "bench/test_*.py" in _ini()["sarbench_case_modules"].split()


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_collects_every_case_and_no_imported_function():
    run = subprocess.run([sys.executable, "-m", "pytest", "bench", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    collected = defaultdict(set)
    for line in run.stdout.splitlines():
        if "::" in line:
            file, name = line.split("::", 1)
            collected[file].add(name.split("[")[0])
    assert {"vanilla", "direction"} <= collected["bench/test_vanilla.py"]
    assert {"design", "direction"} <= collected["bench/test_design.py"]
    assert {"hf", "direction"} <= collected["bench/test_hf.py"]
    for path in sorted((ROOT / "bench").glob("test_*.py")):
        module, file = _load(path), f"bench/{path.name}"
        foreign = sorted(n for n in collected[file] if getattr(module, n).__module__ != module.__name__)
        assert not foreign, f"{file}: pytest collects {foreign}, imported into the module; rename them"
        cases = {n for n, obj in vars(module).items() if is_case(module, n, obj)}
        assert cases <= collected[file], f"{file}: {sorted(cases - collected[file])} not collected"


CASE_MODULE = """
    import pytest
    from helpers import imported_case  # a function of another module: a helper, whatever its name

    pytestmark = pytest.mark.perf


    def pytest_generate_tests(metafunc):
        if "dataset" in metafunc.fixturenames:
            metafunc.parametrize("dataset", ["ml-1m", "beauty"])


    @pytest.fixture
    def prepared():
        return 2


    def _helper(dataset):
        raise AssertionError("a private helper was collected")


    def ablation(dataset, prepared):  # a new table's case, under a name pytest.ini does not list
        assert dataset in ("ml-1m", "beauty") and prepared == 2


    def test_plain():
        pass
"""


def test_a_new_case_under_another_name_is_collected(pytester):
    pytester.makeini("""
        [pytest]
        python_files = test_*.py bench_*.py
        python_functions = test_*
        sarbench_case_modules = bench/test_*.py
    """)
    bench = pytester.mkdir("bench")
    (bench / "helpers.py").write_text("def imported_case(dataset):\n    raise AssertionError('imported')\n")
    (bench / "test_new_table.py").write_text(inspect.cleandoc(CASE_MODULE) + "\n")
    # the same functions outside the case modules: pytest's own rule, test_* only
    (bench / "bench_other.py").write_text(inspect.cleandoc(CASE_MODULE) + "\n")
    result = pytester.runpytest_subprocess("bench", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    ids = sorted(line.split(" ")[0] for line in result.outlines if " PASSED" in line)
    assert ids == ["bench/bench_other.py::test_plain", "bench/test_new_table.py::ablation[beauty]",
                   "bench/test_new_table.py::ablation[ml-1m]", "bench/test_new_table.py::test_plain"]


def test_without_the_ini_option_nothing_changes(pytester):
    pytester.makepyfile(test_mod="""
        def ablation():
            raise AssertionError("collected without sarbench_case_modules")

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("name,expected", [("ablation", True), ("_helper", False), ("pytest_generate_tests", False),
                                           ("imported", False), ("fixture", False), ("CONSTANT", False)])
def test_is_case(name, expected, tmp_path):
    (tmp_path / "cases_mod.py").write_text(inspect.cleandoc("""
        import pytest
        from os.path import join as imported

        CONSTANT = 3

        def ablation(): pass
        def _helper(): pass
        def pytest_generate_tests(metafunc): pass

        @pytest.fixture
        def fixture(): return 1
    """) + "\n")
    module = _load(tmp_path / "cases_mod.py")
    assert is_case(module, name, getattr(module, name)) is expected
