"""The `sarbench` command line: entry points that are not pytest runs.

Commands come in groups (``sarbench data ...``, ``sarbench train``). A group is one function
``add_<group>_commands(sub)`` that adds its parser to the top-level subparsers and sets ``func`` on each
leaf command; a command function takes the parsed arguments and returns the exit status. To add a group,
write such a function and append it to :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .data import ChecksumError, DataFormatError, DatasetMissing, DeclarationError, UnknownDataset
from .data_command import add_data_commands
from .overrides import OverrideError, apply_overrides, convert_value  # noqa: F401  (re-exported)
from .run_command import add_report_commands, add_run_commands
from .train_command import add_train_commands

log = logging.getLogger(__name__)

# Errors that are the user's input, not a bug: reported as one line, exit status 1.
USER_ERRORS: tuple[type[BaseException], ...] = (ChecksumError, DataFormatError, DatasetMissing, DeclarationError,
                                                UnknownDataset)


def add_tune_commands(sub) -> None:
    """The ``tune`` command: hyperparameter search on Ray Tune (sarbench.search; Ray is imported only to run)."""
    from .search.command import add_tune_parser

    add_tune_parser(sub)


def add_compare_and_plan_commands(sub) -> None:
    """``compare`` (a model against the committed AE and AR) and ``plan`` (a selection's cost): compare_command.py."""
    from .compare_command import add_compare_commands, add_plan_commands

    add_compare_commands(sub)
    add_plan_commands(sub)


COMMAND_GROUPS: list[Callable] = [add_data_commands, add_train_commands, add_run_commands, add_report_commands,
                                  add_tune_commands, add_compare_and_plan_commands]


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
        print(f"sarbench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
