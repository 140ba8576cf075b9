"""The ``sarbench data`` commands: Table 1 statistics of the data folder, and downloads."""

from __future__ import annotations

import argparse
import sys

from .data import DATA_ENV, DATASETS, data_dir
from .data.table1 import paper_verdict, stats_rows


# --- sarbench data stats --------------------------------------------------------------------------


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
    print(f"paper's version: {paper_verdict(result.is_paper_version, result.paper_version_note)}")
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



__all__ = ["add_data_commands", "cmd_data_fetch", "cmd_data_stats"]
