"""Table 1 regenerated from the data (``sarbench data stats``): each dataset's statistics beside the paper's.

A paper dataset gives a row from the data (its checksum and whether it is the paper's version) and
the paper's row; declared datasets and the embedded synthetic one follow.
"""

from __future__ import annotations

from . import (
    DATASETS,
    SYNTHETIC,
    ChecksumError,
    DataFormatError,
    DatasetMissing,
    DeclarationError,
    data_dir,
    declared_datasets,
    file_sha256,
    find_dataset_file,
    how_to_get,
    load_raw,
    make_synthetic,
    paper_version,
)
from .declared import load_declared
from .readers import READERS


def _count(n: int) -> str:
    return f"{n:,}"


def _printed_count(n: int) -> str:
    """Table 1's style: 395K, 1M."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}K"
    return _count(n)


def paper_verdict(is_paper: bool | None, note: str) -> str:
    """The verdict on "is this the paper's version?": yes, no or unknown, with its reason."""
    word = {True: "yes", False: "no", None: "unknown"}[is_paper]
    reason = note.split(": ", 1)[1].split(" (", 1)[0] if ": " in note else note
    return f"{word} ({reason})"


def stats_rows(folder=None) -> tuple[list[dict], list[str]]:
    """Rows of the regenerated Table 1 beside the paper's, and one line per missing or unreadable dataset.

    Each present dataset gives a row from the data (``kind='data'``) followed by the paper's row
    (``kind='paper'``); the embedded synthetic dataset comes last.
    """
    rows: list[dict] = []
    problems: list[str] = []
    root = data_dir(folder)
    for name, info in DATASETS.items():
        try:
            found = find_dataset_file(name, folder)
        except DatasetMissing as exc:
            problems.append(f"{name}: missing; {exc}")
            continue
        if found is None:
            problems.append(f"{name}: missing; {how_to_get(name, root)}")
            continue
        path, kind = found
        try:
            if kind == "raw":
                ds = load_raw(name, path)
                checksum = "raw source, unverified"
            else:
                sha = file_sha256(path)
                checksum = "ok" if sha == info.sha256 else f"MISMATCH ({sha[:12]}...)"
                ds = READERS[info.format](path, name=name)
        except (DataFormatError, OSError, ValueError) as exc:
            problems.append(f"{name}: unreadable; {exc}")
            continue
        st = ds.stats()
        is_paper, note = paper_version(info, ds.fingerprint(), st)
        rows.append({
            "dataset": name, "kind": "data", "source": path.name, "users": _count(st.users),
            "items": _count(st.items), "interactions": _count(st.interactions),
            "avg len": f"{st.avg_length:.2f}", "density": f"{st.density:.2e}",
            "fingerprint": ds.fingerprint(), "sha256": checksum, "paper's version?": paper_verdict(is_paper, note),
        })
        p = info.paper
        rows.append({
            "dataset": "", "kind": "paper", "source": "paper, Table 1", "users": _count(p.users),
            "items": _count(p.items), "interactions": _printed_count(p.interactions),
            "avg len": f"{p.avg_length:.1f}", "density": f"{p.density:.0e}",
            "fingerprint": info.paper_fingerprint or "(not available)", "sha256": "", "paper's version?": "",
        })
    try:
        declared = declared_datasets(root)
    except DeclarationError as exc:
        declared = {}
        problems.append(f"datasets.toml: unreadable; {exc}")
    for name, decl in declared.items():
        try:
            ds = load_declared(decl)
        except (DataFormatError, ChecksumError, OSError, ValueError) as exc:
            problems.append(f"{name}: unreadable; {exc}")
            continue
        st = ds.stats()
        rows.append({
            "dataset": name, "kind": "data", "source": decl.path.name, "users": _count(st.users),
            "items": _count(st.items), "interactions": _count(st.interactions),
            "avg len": f"{st.avg_length:.2f}", "density": f"{st.density:.2e}", "fingerprint": ds.fingerprint(),
            "sha256": "ok" if decl.sha256 else "not declared", "paper's version?": "n/a (not in the paper)",
        })
    syn = make_synthetic()
    st = syn.stats()
    rows.append({
        "dataset": SYNTHETIC, "kind": "data", "source": "embedded (seeded generator)",
        "users": _count(st.users), "items": _count(st.items), "interactions": _count(st.interactions),
        "avg len": f"{st.avg_length:.2f}", "density": f"{st.density:.2e}", "fingerprint": syn.fingerprint(),
        "sha256": "n/a", "paper's version?": "n/a (not in the paper)",
    })
    return rows, problems
