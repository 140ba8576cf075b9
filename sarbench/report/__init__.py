"""The report: result records aggregated into the paper's tables, beside the paper's numbers.

    gains.py   the paper's summary statistics (per-cell AR-over-AE gains, means, best over best)
    cells.py   records -> cells: labels, comparability with the paper, notes
    tables.py  the tables (ours vs paper, mean gains, paired tests, Table 1, exclusion rules)
    render.py  Markdown / CSV / LaTeX, report.md and summary.txt; build_report (``sarbench report``)

The attention figures are the analysis's (sarbench.analysis.figures): the analysis renders its tables
with this package, and nothing here imports the analysis.

Entry points: :func:`build_report` (``sarbench report DIR``), :func:`build_tables`, :func:`summary_text`.
"""

from .cells import (
    NOT_COMPARABLE,
    aggregate,
    comparability,
    record_labels,
    records_frame,
    stale_note,
    stopping_note,
    tuned_note,
    variant_label,
)
from .gains import CELL_KEYS, GainStatistics, best_over_best, cell_gains, gain_statistics, relative_gain
from .render import build_report, report_markdown, summary_text, to_latex, to_markdown, write_report, write_table
from .tables import (
    TABLE_TITLES,
    Report,
    Section,
    build_tables,
    comparison_table,
    data_table,
    exclusion_table,
    significance_table,
    summary_table,
)

__all__ = [
    "CELL_KEYS", "NOT_COMPARABLE", "TABLE_TITLES", "GainStatistics", "Report", "Section", "aggregate",
    "best_over_best", "build_report", "build_tables", "cell_gains", "comparability", "comparison_table",
    "data_table", "exclusion_table", "gain_statistics", "record_labels", "records_frame", "relative_gain",
    "report_markdown", "significance_table", "stale_note", "stopping_note", "summary_table", "summary_text",
    "to_latex", "to_markdown", "tuned_note", "variant_label", "write_report", "write_table",
]
