"""Spreadsheet-safe cells for every CSV and XLSX the registry writes.

A text cell that starts with = + - @, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula (`=HYPERLINK(...)` in a change reason, a regimen name or a label
runs when a monitor opens the export). Such a cell is written with a leading single quote, as
the OWASP CSV-injection guidance says: spreadsheets then show it as text.

Only text is touched: numbers stay numbers (a negative Cox coefficient is still -0.5 in the CSV
and a numeric cell in the XLSX), and so does text that is just a number ("-0.5"), which no
spreadsheet evaluates. So R and pandas read the statistical files back unchanged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by safe_frame: the audit trail and codebook need only text
    import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PREFIX = re.compile(r"[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_formula_like(value) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(FORMULA_PREFIXES)
        and not _NUMBER.fullmatch(value)
    )


def safe_cell(value):
    """The value to write in a spreadsheet cell: formula-like text quoted, anything else as is."""
    return "'" + value if is_formula_like(value) else value


def safe_row(values) -> list:
    return [safe_cell(v) for v in values]


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with formula-like text cells quoted. Numeric columns are left alone, and the
    frame itself is returned (no copy) when no cell needs quoting, the usual case."""
    import pandas as pd

    out = frame
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position]
        if not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
            continue
        try:  # a vectorised pre-filter: only cells starting with a prefix go through safe_cell
            candidates = values.str.match(_PREFIX, na=False).astype(bool)
        except (AttributeError, TypeError):  # no text in the column (flags, dates, numbers)
            continue
        if candidates.any():
            if out is frame:
                out = frame.copy()
            out.iloc[:, position] = values.where(~candidates, values.map(safe_cell))
    return out
