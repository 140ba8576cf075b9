"""The `sarbench` command line: entry points that are not pytest runs.

Commands come in groups (``sarbench data ...``). A group is one function ``add_<group>_commands(sub)``
that adds its parser to the top-level subparsers and sets ``func`` on each leaf command; a command
function takes the parsed arguments and returns the exit status. To add a group, write such a
function and append it to :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .data import (
    DATA_ENV,
    DATASETS,
    SYNTHETIC,
    ChecksumError,
    DataFormatError,
    DatasetMissing,
    data_dir,
    file_sha256,
    find_dataset_file,
    how_to_get,
    load_raw,
    make_synthetic,
    paper_version,
)
from .data.readers import READERS

log = logging.getLogger(__name__)

# Errors that are the user's input, not a bug: reported as one line, exit status 1.
USER_ERRORS: tuple[type[BaseException], ...] = (ChecksumError, DataFormatError, DatasetMissing, KeyError)


# --- sarbench data stats --------------------------------------------------------------------------


def _count(n: int) -> str:
    return f"{n:,}"


def _printed_count(n: int) -> str:
    """Table 1's style: 395K, 1M."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}K"
    return _count(n)


def _verdict(is_paper: bool | None, note: str) -> str:
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
            "fingerprint": ds.fingerprint(), "sha256": checksum, "paper's version?": _verdict(is_paper, note),
        })
        p = info.paper
        rows.append({
            "dataset": "", "kind": "paper", "source": "paper, Table 1", "users": _count(p.users),
            "items": _count(p.items), "interactions": _printed_count(p.interactions),
            "avg len": f"{p.avg_length:.1f}", "density": f"{p.density:.0e}",
            "fingerprint": info.paper_fingerprint or "(not available)", "sha256": "", "paper's version?": "",
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


def cmd_data_stats(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    folder = args.data_dir
    rows, problems = stats_rows(folder)
    columns = [c for c in rows[0] if c != "kind"]
    table = tabulate([[r[c] for c in columns] for r in rows], headers=columns,
                     tablefmt="github" if args.markdown else "simple", disable_numparse=True)
    root = data_dir(folder)
    where = f"data folder: {root}" if root else f"no data folder (--data-dir or ${DATA_ENV}): synthetic only"
    print(("**Table 1, regenerated** — " if args.markdown else "Table 1, regenerated from the data; ") + where)
    print()
    print(table)
    if problems:
        print()
        for line in problems:
            print(f"- {line}" if args.markdown else line)
    return 1 if any(": unreadable;" in p for p in problems) else 0


# --- sarbench data fetch --------------------------------------------------------------------------


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .data.fetch import FetchError, fetch

    try:
        result = fetch(args.name, args.data_dir, url=args.url, progress=not args.no_progress, raw=args.raw,
                       force=args.force)
    except FetchError as exc:
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1
    st = result.stats
    print(f"{'downloaded' if result.downloaded else 'already present'}: {result.path}"
          + (f" (from {result.url})" if result.url else ""))
    if result.verified:
        print(f"sha256: {result.sha256} (verified against the registry)")
    else:
        print(f"sha256: {result.sha256} (NOT verified: no pinned checksum for this source)")
    print(f"users {st.users:,}, items {st.items:,}, interactions {st.interactions:,}, "
          f"avg length {st.avg_length:.2f}, density {st.density:.2e}")
    print(f"fingerprint: {result.fingerprint}")
    print(f"paper's version: {_verdict(result.is_paper_version, result.paper_version_note)}")
    return 0


def add_data_commands(sub) -> None:
    """The ``data`` group: ``stats`` and ``fetch``."""
    data = sub.add_parser("data", help="datasets: statistics and downloads",
                          description="Datasets: Table 1 statistics of what is in the data folder, and downloads.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    data_dir_help = f"folder with the real datasets (default: ${DATA_ENV})"

    stats = dsub.add_parser(
        "stats", help="Table 1 regenerated from the data, beside the paper's",
        description="Print users, items, interactions, average length, density and fingerprint of every "
        "registered dataset found in the data folder beside the paper's Table 1, whether each is the "
        "paper's version, and the embedded synthetic dataset; list the missing ones with how to get them.",
    )
    stats.add_argument("--data-dir", default=None, help=data_dir_help)
    stats.add_argument("--markdown", action="store_true", help="print a Markdown table (default: plain text)")
    stats.set_defaults(func=cmd_data_stats)

    fetch = dsub.add_parser(
        "fetch", help="download a dataset into the data folder",
        description="Download a dataset's processed file (SASRec/S3-Rec repositories; sha256 verified) or, "
        "with --raw, its raw source (not verified: its sha256 is printed). The file is kept only if it "
        "parses; its statistics and whether it is the paper's version are printed.",
    )
    fetch.add_argument("name", choices=list(DATASETS), help="dataset name")
    fetch.add_argument("--data-dir", default=None, help=data_dir_help + "; created if missing")
    fetch.add_argument("--raw", action="store_true",
                       help="fetch the raw source (e.g. ml-1m.zip, Amazon ratings CSV) instead of the processed "
                       "file (default: processed)")
    fetch.add_argument("--url", default=None, help="download from this url instead (default: the registry's)")
    fetch.add_argument("--force", action="store_true",
                       help="download even if the file is present, replacing it (default: keep it)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar (default: bar on stderr)")
    fetch.set_defaults(func=cmd_data_fetch)


COMMAND_GROUPS: list[Callable] = [add_data_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sarbench", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v: info, -vv: debug; default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sarbench: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
