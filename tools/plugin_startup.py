"""What installing sarbench costs a pytest run that has nothing to do with it.

Installing sarbench registers its pytest plugin (entry point ``pytest11``) for every pytest run in the
environment. This script makes an empty project (one trivial test, no conftest) in a temporary folder
and times ``python -m pytest -q`` there with the plugin loaded and with it blocked (``-p no:sarbench``,
which is what an environment without sarbench loads), interleaved round by round so that both see
the same machine. It also records which heavy modules a plain run imports (torch must not be one).

    python tools/plugin_startup.py [--rounds 15] [--out reports/speed_plugin_startup.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reporting import write_report  # noqa: E402  sibling module in tools/

HEAVY = ("torch", "numpy", "pandas", "scipy", "transformers", "ray")
PROBE = """
import sys, json, pytest
code = pytest.main(["-q", "-p", "no:cacheprovider"])
print("MODULES " + json.dumps(sorted(m for m in %r if m in sys.modules)))
sys.exit(code)
""" % (HEAVY,)


def run_once(folder: Path, block: bool) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"] + (["-p", "no:sarbench"] if block else [])
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    t0 = time.perf_counter()
    subprocess.run(args, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def heavy_modules(folder: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MODULES "))
    return json.loads(line.removeprefix("MODULES "))


def measure(rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="empty-project-") as tmp:
        folder = Path(tmp)
        (folder / "test_nothing.py").write_text("def test_nothing():\n    assert 1 + 1 == 2\n")
        run_once(folder, False), run_once(folder, True)  # warm the file cache
        with_plugin, without = [], []
        for _ in range(rounds):
            with_plugin.append(run_once(folder, False))
            without.append(run_once(folder, True))
        return {"with": with_plugin, "without": without, "heavy_modules": heavy_modules(folder)}


def report(res: dict, rounds: int) -> str:
    w, wo = statistics.median(res["with"]), statistics.median(res["without"])
    heavy = ", ".join(res["heavy_modules"]) or "none"
    return "\n".join([
        "# pytest start-up in an unrelated project, with and without the sarbench plugin", "",
        f"`python tools/plugin_startup.py --rounds {rounds}`: an empty project (one trivial test), "
        f"`python -m pytest -q` with the plugin and with `-p no:sarbench`, interleaved, {rounds} rounds each. "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average at the start "
        f"{os.getloadavg()[0]:.1f} (a shared machine: compare the two columns, not the absolute times).", "",
        "| | median s | min s | max s |", "|---|---|---|---|",
        f"| with sarbench | {w:.3f} | {min(res['with']):.3f} | {max(res['with']):.3f} |",
        f"| without (`-p no:sarbench`) | {wo:.3f} | {min(res['without']):.3f} | {max(res['without']):.3f} |",
        "", f"Ratio of medians, with / without: {w / wo:.3f} ({(w - wo) * 1000:+.0f} ms).", "",
        f"Heavy modules a plain run imports with the plugin loaded (of {', '.join(HEAVY)}): {heavy}.", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", default="reports/speed_plugin_startup.md", help="Markdown report ('-' = print)")
    args = ap.parse_args(argv)
    text = report(measure(args.rounds), args.rounds)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
