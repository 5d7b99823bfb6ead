"""A small streaming XLSX writer for the run's workbooks (analysis_dataset.xlsx, tables.xlsx).

openpyxl builds a Python object per cell and serialises it through lxml, even in write-only mode:
at 100,000 patients the dataset's 4 million cells took about 40 s and tables.xlsx several more
(issue #19). Here each column becomes its cells' XML in one list comprehension and each sheet is
written into the zip as it is produced, so the cost is a few string operations per cell.

Cells are what openpyxl wrote: numbers (int, float) as numbers, booleans as booleans, text as
inline strings, missing values as no cell; a non-finite number (a diverging fit's CI limit) as
the text "inf" / "-inf", which Excel would otherwise refuse. Formatted sheets take a small set of
styles (bold, a number format, right alignment, an indent) and column widths. Text is escaped and
characters XML cannot hold are dropped. Formula-like text is the caller's business
(exchange.safe.safe_frame / safe_cell), as before.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml."
_KEEP = ' xml:space="preserve"'  # leading and trailing spaces stay
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CHUNK = 5000  # rows per write into the zip stream


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _text(value: str) -> str:
    return escape(_ILLEGAL.sub("", value))


@dataclass(frozen=True)
class Style:
    bold: bool = False
    number_format: str | None = None
    right: bool = False
    indent: int = 0


class _Styles:
    def __init__(self):
        self.keys: list[Style] = [Style()]
        self.formats: dict[str, int] = {}

    def index(self, style: Style | None) -> int:
        if style is None or style == Style():
            return 0
        if style not in self.keys:
            if style.number_format and style.number_format not in self.formats:
                self.formats[style.number_format] = 164 + len(self.formats)
            self.keys.append(style)
        return self.keys.index(style)

    def xml(self) -> str:
        formats = "".join(
            f'<numFmt numFmtId="{i}" formatCode="{escape(code, {chr(34): "&quot;"})}"/>'
            for code, i in self.formats.items()
        )
        xfs = []
        for style in self.keys:
            fmt = self.formats.get(style.number_format, 0) if style.number_format else 0
            attrs = f'numFmtId="{fmt}" fontId="{int(style.bold)}" fillId="0" borderId="0" xfId="0"'
            attrs += ' applyNumberFormat="1"' if fmt else ""
            attrs += ' applyFont="1"' if style.bold else ""
            align = ""
            if style.right or style.indent:
                attrs += ' applyAlignment="1"'
                align = "<alignment"
                align += ' horizontal="right"' if style.right else ""
                align += f' indent="{style.indent}"' if style.indent else ""
                align += "/>"
            xfs.append(f"<xf {attrs}>{align}</xf>" if align else f"<xf {attrs}/>")
        return (
            _XML
            + f'<styleSheet xmlns="{_MAIN}">'
            + (f'<numFmts count="{len(self.formats)}">{formats}</numFmts>' if formats else "")
            + '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border>'
            "</borders>"
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
            "</cellStyleXfs>"
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>"
        )


def _cell(ref: str, value, style: int = 0) -> str:
    """One cell's XML ('' for a missing value)."""
    s = f' s="{style}"' if style else ""
    if value is None:
        return f'<c r="{ref}"{s}/>' if style else ""
    if isinstance(value, bool):
        return f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        return f'<c r="{ref}"{s}><v>{value}</v></c>'
    if isinstance(value, float):
        if math.isnan(value):
            return f'<c r="{ref}"{s}/>' if style else ""
        if math.isinf(value):
            value = "inf" if value > 0 else "-inf"
        else:
            return f'<c r="{ref}"{s}><v>{value!r}</v></c>'
    text = _text(str(value))
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{_KEEP}>{text}</t></is></c>'


def _column_cells(values, letter: str, first_row: int) -> list[str]:
    """The cells of one frame column (a pandas Series), rows first_row.. in order."""
    import numpy as np

    kind = values.dtype.kind if isinstance(values.dtype, np.dtype) else "O"  # not Int64 etc.
    rows = range(first_row, first_row + len(values))
    if kind == "f":
        array = values.to_numpy()
        finite = np.isfinite(array).tolist()
        return [
            f'<c r="{letter}{r}"><v>{v!r}</v></c>' if ok else _cell(f"{letter}{r}", v)
            for r, v, ok in zip(rows, array.tolist(), finite, strict=True)
        ]
    if kind in "iu":
        return [
            f'<c r="{letter}{r}"><v>{v}</v></c>' for r, v in zip(rows, values.tolist(), strict=True)
        ]
    if kind == "b":
        return [
            f'<c r="{letter}{r}" t="b"><v>{int(v)}</v></c>'
            for r, v in zip(rows, values.tolist(), strict=True)
        ]
    missing = values.isna().to_numpy()
    if kind == "O" and not isinstance(values.dtype, np.dtype):  # nullable Int64, boolean, Float64
        if values.dtype.kind in "iu":
            numbers = values.to_numpy(dtype="int64", na_value=0).tolist()
            return [
                "" if gap else f'<c r="{letter}{r}"><v>{v}</v></c>'
                for r, v, gap in zip(rows, numbers, missing.tolist(), strict=True)
            ]
        if values.dtype.kind == "b":
            flags = values.to_numpy(dtype=bool, na_value=False).tolist()
            return [
                "" if gap else f'<c r="{letter}{r}" t="b"><v>{int(v)}</v></c>'
                for r, v, gap in zip(rows, flags, missing.tolist(), strict=True)
            ]
        if values.dtype.kind == "f":
            return _column_cells(values.astype("float64"), letter, first_row)
    # Text and mixed columns: cell by cell (missing values as None); plain text the fast way.
    objects = values.astype(object).where(~missing, None).tolist()
    cells = []
    for r, v in zip(rows, objects, strict=True):
        if type(v) is str:
            text = _text(v)
            cells.append(f'<c r="{letter}{r}" t="inlineStr"><is><t{_KEEP}>{text}</t></is></c>')
            continue
        if v is not None and not isinstance(v, (bool, int, float, str)):
            v = v.item() if hasattr(v, "item") else str(v)  # numpy scalars, dates
        cells.append(_cell(f"{letter}{r}", v))
    return cells


class Workbook:
    """`with Workbook(path) as book: book.frame_sheet(...); book.sheet(...)`: each sheet is
    written into the file when added; the workbook parts when the block ends."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.zip = zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.titles: list[str] = []
        self.styles = _Styles()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if error is None:
            self.close()
        else:
            self.zip.close()

    def _write_sheet(self, title: str, chunks: Iterable[str], widths=None) -> None:
        self.titles.append(title)
        name = f"xl/worksheets/sheet{len(self.titles)}.xml"
        with self.zip.open(name, "w", force_zip64=True) as stream:
            head = _XML + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            if widths:
                head += "<cols>" + "".join(
                    f'<col min="{i + 1}" max="{i + 1}" width="{w}" customWidth="1"/>'
                    for i, w in sorted(widths.items())
                )
                head += "</cols>"
            stream.write((head + "<sheetData>").encode())
            for chunk in chunks:
                stream.write(chunk.encode())
            stream.write(b"</sheetData></worksheet>")

    def frame_sheet(self, title: str, frame, header: bool = True) -> None:
        """A sheet holding the frame: its column names, then a row per frame row."""
        self.frames_sheet(title, [frame], [str(c) for c in frame.columns], header)

    def frames_sheet(self, title: str, frames, columns, header: bool = True, on_frame=None):
        """One sheet of frames with the same columns, each written and dropped before the next
        is read (the background export of the whole dataset: memory stays flat). `on_frame(n)`:
        called with each frame's row count once written."""

        def chunks():
            first = 1
            if header:
                names = [_cell(f"{column_letter(i)}1", str(c)) for i, c in enumerate(columns)]
                yield _row(1, names)
                first = 2
            letters = [column_letter(i) for i in range(len(columns))]
            for frame in frames:
                for begin in range(0, len(frame), _CHUNK):
                    part = frame.iloc[begin : begin + _CHUNK]
                    cells = [
                        _column_cells(part.iloc[:, i], letters[i], first + begin)
                        for i in range(part.shape[1])
                    ]
                    yield (
                        "".join(
                            f'<row r="{first + begin + k}">{"".join(row)}</row>'
                            for k, row in enumerate(zip(*cells, strict=True))
                        )
                        if cells
                        else ""
                    )
                first += len(frame)
                if on_frame is not None:
                    on_frame(len(frame))

        self._write_sheet(title, chunks())

    def sheet(
        self,
        title: str,
        rows: Iterable[Sequence[tuple[object, Style | None]]],
        widths: dict[int, float] | None = None,
    ) -> None:
        """A sheet of (value, style) cells, a row per sequence (an empty one: an empty row)."""

        def chunks():
            for r, row in enumerate(rows, start=1):
                cells = [
                    _cell(f"{column_letter(i)}{r}", value, self.styles.index(style))
                    for i, (value, style) in enumerate(row)
                ]
                yield _row(r, cells)

        self._write_sheet(title, chunks(), widths)

    def close(self) -> None:
        sheets = "".join(
            f'<sheet name="{escape(t, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
            for i, t in enumerate(self.titles, start=1)
        )
        n = len(self.titles)
        parts = {
            "[Content_Types].xml": (
                _XML
                + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" '
                'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/xl/workbook.xml" ContentType="{_SHEET_TYPE}sheet.main+xml"/>'
                f'<Override PartName="/xl/styles.xml" ContentType="{_SHEET_TYPE}styles+xml"/>'
                + "".join(
                    f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                    f'ContentType="{_SHEET_TYPE}worksheet+xml"/>'
                    for i in range(1, n + 1)
                )
                + "</Types>"
            ),
            "_rels/.rels": (
                _XML + f'<Relationships xmlns="{_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
                "</Relationships>"
            ),
            "xl/workbook.xml": (
                _XML + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
                f"<sheets>{sheets}</sheets></workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                _XML
                + f'<Relationships xmlns="{_PKG_REL}">'
                + "".join(
                    f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" '
                    f'Target="worksheets/sheet{i}.xml"/>'
                    for i in range(1, n + 1)
                )
                + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
                "</Relationships>"
            ),
            "xl/styles.xml": self.styles.xml(),
        }
        for name, text in parts.items():
            self.zip.writestr(name, text)
        self.zip.close()


def _row(r: int, cells: list[str]) -> str:
    return f'<row r="{r}">{"".join(cells)}</row>'
