"""analysis.xlsx, the streaming writer of analysis_dataset.xlsx and tables.xlsx: what openpyxl
reads back is what the frame holds (numbers as numbers, flags as booleans, text as text, missing
values as empty cells) and the formatted sheets keep their styles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from openpyxl import load_workbook

from analysis import xlsx


def test_a_frame_sheet_reads_back_cell_for_cell(tmp_path):
    frame = pd.DataFrame(
        {
            "study_id": ["KR01-001", "  spaced  ", "a & b < c > d", None],
            "months": [1.5, np.nan, 0.1 + 0.2, -2.0],
            "limit": [1.0, np.inf, -np.inf, 3.25],
            "days": np.array([3, 0, -7, 123456789012], dtype="int64"),
            "cycles": pd.array([1, None, 3, 0], dtype="Int64"),
            "evaluable": pd.array([True, None, False, True], dtype="boolean"),
            "flag": [True, False, True, False],
            "mixed": ["x", 2, 2.5, np.int64(7)],
            "control": ["bell\x07here", "tab\there", "", "new\nline"],
        }
    )
    path = tmp_path / "frame.xlsx"
    with xlsx.Workbook(path) as book:
        book.frame_sheet("data", frame)
    sheet = load_workbook(path)["data"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == tuple(frame.columns)
    assert [r[0] for r in rows[1:]] == ["KR01-001", "  spaced  ", "a & b < c > d", None]
    assert rows[1][1] == 1.5 and rows[2][1] is None and rows[3][1] == 0.1 + 0.2  # every bit
    assert [r[2] for r in rows[1:]] == [1.0, "inf", "-inf", 3.25]
    assert [r[3] for r in rows[1:]] == [3, 0, -7, 123456789012]
    assert [r[4] for r in rows[1:]] == [1, None, 3, 0]
    assert [r[5] for r in rows[1:]] == [True, None, False, True]
    assert [r[6] for r in rows[1:]] == [True, False, True, False]
    assert [r[7] for r in rows[1:]] == ["x", 2, 2.5, 7]
    assert [r[8] for r in rows[1:]] == ["bellhere", "tab\there", "", "new\nline"]
    types = [c.data_type for c in sheet[2]]
    assert types == ["s", "n", "n", "n", "n", "b", "b", "s", "s"]


def test_a_formatted_sheet_keeps_bold_number_formats_indents_and_widths(tmp_path):
    path = tmp_path / "tables.xlsx"
    p_format = '[<0.001]"< 0.001";0.000'
    with xlsx.Workbook(path) as book:
        book.sheet(
            "Table 2",
            [
                [("Table 2. Response", xlsx.Style(bold=True))],
                [("Variables", xlsx.Style(bold=True)), ("P value", xlsx.Style(bold=True))],
                [
                    ("\u2265 55", xlsx.Style(indent=1)),
                    (0.0004, xlsx.Style(number_format=p_format, right=True)),
                ],
                [],
                [("A footnote", None)],
            ],
            widths={0: 48, 1: 22},
        )
        book.frame_sheet("second", pd.DataFrame({"a": [1]}))
    book = load_workbook(path)
    assert book.sheetnames == ["Table 2", "second"]
    sheet = book["Table 2"]
    assert sheet["A1"].value == "Table 2. Response" and sheet["A1"].font.b
    assert sheet["B2"].font.b and not sheet["A3"].font.b
    assert sheet["A3"].alignment.indent == 1
    assert sheet["B3"].value == 0.0004 and sheet["B3"].number_format == p_format
    assert sheet["B3"].alignment.horizontal == "right"
    assert sheet["A5"].value == "A footnote"
    assert sheet.column_dimensions["A"].width == 48 and sheet.column_dimensions["B"].width == 22
    assert book["second"]["A2"].value == 1


def test_column_letters_go_past_z():
    assert [xlsx.column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
