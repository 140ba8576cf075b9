"""What decides a stored result: the results version, and a hash of the code that computes results.

A stored record is reused (and compared, and reported) as long as the *result-determining* code is
the same. That is not the commit: a README edit, a new report column or a refactor that moves code
without changing a number must not invalidate hours of training. Two things describe it:

``RESULTS_VERSIONS``
    One integer per *results family*, bumped **on purpose** whenever a change moves that family's
    results (a model, loss, optimiser, training, data or evaluation change). The families are the
    networks whose numbers move together (:func:`results_family`): ``vanilla`` (the authors'
    Table-4 network, BERT4Rec-style; also the attention study's Local-AE, which is that network),
    ``modsar`` (their modular network: Table 5's designs), each Table-6 backbone (``albert``,
    ``llama``, ``transfo_xl``) and ``outside`` (every other registered model, e.g. GRU4Rec). A fix
    of the design space then leaves Table 4's records current. A record carries its family's
    version, which is part of its key; a record made under another version of its family is
    *stale*: never reused, and reported as stale (never silently dropped).
    ``tests/test_results_version.py`` guards them: it trains tiny models of every family for a few
    steps and compares their numbers with ``tests/golden_results.json``, written per family for its
    current version; a change that moves them fails until that family's version is bumped and its
    entries regenerated (``python tests/test_results_version.py --update``, which rewrites only the
    families whose version changed).
    ``RESULTS_VERSION`` is the ``vanilla`` family's, the version of a configuration whose family
    cannot be told.

``source_hash()``
    sha256 of the result-determining modules (``RESULT_SOURCES``) with comments and docstrings
    stripped (a canonical dump of their syntax trees, stable across Python versions). Recorded in
    every record for provenance, so a reader can see whether the code changed since; it is not
    part of the key (a pure refactor changes it).

Beside them, what a record says about where it was made: the commit (``code_version``), the machine
(``host_info``) and the GPU (``gpu_name``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import __version__

# Family -> results version (module doc). History: every family was at 3 when they were split; 4 for
# modsar: Q/K/V initialised as three d x d matrices, AR negatives outside the user's whole training
# sequence, the SSE-PT user term in the training logit; 4 for the backbones: Table-6 training as the
# authors' reruns (validation every 5 epochs, up to 2000, patience 50).
RESULTS_VERSIONS: dict[str, int] = {"vanilla": 3, "modsar": 4, "albert": 4, "llama": 4, "transfo_xl": 4, "outside": 3}
RESULTS_VERSION = RESULTS_VERSIONS["vanilla"]
BACKBONE_FAMILIES = ("albert", "llama", "transfo_xl")  # designs.HF_BACKBONES (not imported: a leaf module)

# Modules whose code computes what a record holds, relative to the package folder.
RESULT_SOURCES = (
    "models/*.py", "config.py", "objective.py", "train.py", "optim.py", "evaluate.py", "metrics.py", "baselines.py",
    "cases.py", "smoke.py", "presets.py", "designs.py",
    "data/sequences.py", "data/readers.py", "data/preprocess.py", "data/raw.py", "data/synthetic.py",
)

PACKAGE = Path(__file__).resolve().parent


def _canonical(node) -> str:
    """A version-stable dump of a syntax tree: node types and non-empty fields, no docstrings."""
    if isinstance(node, ast.AST):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body = body[1:]  # drop the docstring
        parts = []
        for name in node._fields:
            value = body if name == "body" and body is not None else getattr(node, name, None)
            if value is None or value == [] or (name == "kind" and isinstance(node, ast.Constant)):
                continue
            parts.append(f"{name}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(v) for v in node) + "]"
    return repr(node)


def _files(package: Path) -> list[Path]:
    files: set[Path] = set()
    for pattern in RESULT_SOURCES:
        files.update(p for p in package.glob(pattern) if p.is_file())
    return sorted(files)


@functools.lru_cache(maxsize=None)
def source_hash(package: str | None = None) -> str:
    """16 hex digits over the result-determining sources (comments and docstrings do not count)."""
    root = Path(package) if package else PACKAGE
    h = hashlib.sha256()
    for path in _files(root):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(_canonical(ast.parse(path.read_text(encoding="utf-8"))).encode())
    return h.hexdigest()[:16]


def results_family(config) -> str:
    """The results family of a record's configuration (``{"model": ..., "train": ..., "model_name": ...}``).

    Told from the configuration alone (not from the record's free-text ``model``): a registered model's
    name (``model_name``) is its family when it is a Table-6 backbone, else ``outside``; the paper's
    model is ``modsar`` when its blocks are ModSAR's (``norm_residual``), else ``vanilla``.
    """
    config = config if isinstance(config, dict) else {}
    name = config.get("model_name")
    if name and name != "sar":
        return name if name in BACKBONE_FAMILIES else "outside"
    model = config.get("model")
    return "modsar" if isinstance(model, dict) and model.get("norm_residual") else "vanilla"


def results_version(family_or_config) -> int:
    """The current results version of a family (a name, or a configuration as :func:`results_family` reads)."""
    family = family_or_config if isinstance(family_or_config, str) else results_family(family_or_config)
    return RESULTS_VERSIONS.get(family, RESULTS_VERSION)


def current_version(record) -> int:
    """This code's results version for ``record``'s family."""
    return results_version(getattr(record, "config", None) or {})


def is_stale(record) -> bool:
    """True when ``record`` was made under another results version of its family than this code's."""
    return int(getattr(record, "results_version", 1)) != current_version(record)


def stale_note(record) -> str:
    return (f"stale: results version {getattr(record, 'results_version', 1)} of the "
            f"{results_family(getattr(record, 'config', None) or {})} family (this code: "
            f"{current_version(record)}); rerun to refresh")


# --- where a record was made ----------------------------------------------------------------------
def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=None)
def code_version(package_dir: str | None = None) -> str:
    """``sarbench.__version__``, plus ``+g<commit>`` and ``-dirty`` when run from a git checkout.

    The commit is only taken when the package's own files are tracked by that repository (an
    installed copy inside some unrelated repository gets no hash). ``-dirty`` means tracked files
    differ from the commit. Outside git, ``$SARBENCH_COMMIT`` names the commit when set (a copy of
    the working tree without ``.git``, such as a GPU machine's, is told it by the script that
    sends it); else it is the bare version. Computed once per process.
    """
    here = Path(package_dir) if package_dir else Path(__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "__init__.py"], here) is None:
        commit = os.environ.get("SARBENCH_COMMIT", "").strip()
        return f"{__version__}+g{commit[:12]}" if commit and not package_dir else __version__
    commit = _git(["rev-parse", "--short=12", "HEAD"], here)
    if not commit:
        return __version__
    status = _git(["status", "--porcelain", "--untracked-files=no"], here)
    dirty = "-dirty" if status else ""
    return f"{__version__}+g{commit}{dirty}"


def host_info() -> dict[str, Any]:
    """Machine description for a record: host name, OS, Python, CPU count, torch version."""
    torch_version = None
    if "torch" in sys.modules:
        torch_version = getattr(sys.modules["torch"], "__version__", None)
    else:
        try:
            from importlib.metadata import version

            torch_version = version("torch")
        except Exception:  # noqa: BLE001 - not installed or broken metadata: just unknown
            torch_version = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch_version,
    }


def gpu_name(device: str) -> str | None:
    """The CUDA device name for ``device`` (``"cuda"``, ``"cuda:1"``), else None."""
    if not str(device).startswith("cuda"):
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_name(torch.device(device))
    except Exception:  # noqa: BLE001 - a name is informational; never fail a record for it
        return None
