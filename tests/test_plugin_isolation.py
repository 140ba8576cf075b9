"""Installing sarbench registers its pytest plugin everywhere: an unrelated project must not pay for it."""

pytest_plugins = ["pytester"]


def test_an_unrelated_pytest_run_imports_no_torch(pytester):
    pytester.makepyfile(test_nothing="""
        import sys

        def test_nothing():
            assert "torch" not in sys.modules, "the sarbench plugin imported torch in an unrelated run"
            assert "sarbench.cases" not in sys.modules
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)  # that the plugin was loaded in such a run: the test below


def test_the_plugin_options_stay_in_their_group(pytester):
    out = pytester.runpytest_subprocess("--help").stdout.str()
    assert "sarbench" in out, "the sarbench plugin is not loaded in an unrelated pytest run"
    group = out[out.index("sarbench"):]
    for option in ("--gpu", "--scale", "--data-dir", "--results", "--datasets", "--update-baseline"):
        assert option in group, f"{option} is not in the sarbench group of pytest --help"
