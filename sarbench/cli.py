"""The `sarbench` command line: entry points that are not pytest runs."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sarbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="datasets: statistics and downloads")
    data.add_subparsers(dest="data_command", required=True)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args) if hasattr(args, "func") else 0


if __name__ == "__main__":
    sys.exit(main())
