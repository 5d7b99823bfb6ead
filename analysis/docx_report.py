"""report.docx: the run for the manuscript, as a Word document (python-docx).

The same sections as report.html and the dashboard (analysis.display): every table a real Word
table with the formatted text of the page, every figure embedded as its PNG, with its title
and footnote. Long step-function tables stay in their CSVs (a sentence says so).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from docx.shared import Inches, Pt

from . import formatting as fmt

FIGURE_WIDTH = Inches(6.3)
AT_RISK_WIDTH = Inches(6.3)


def write(path: Path, sections, meta: dict, out: Path) -> None:
    document = Document()
    for part in document.sections:
        part.left_margin = part.right_margin = Inches(0.8)
        part.top_margin = part.bottom_margin = Inches(0.8)
    style = document.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(10)
    document.add_heading("Blinatumomab in R/R Ph-negative B-ALL: registry analysis", level=0)
    _run_facts(document, meta)
    for section in sections:
        document.add_heading(section.heading, level=1)
        if section.note:
            document.add_paragraph(section.note)
        if section.caption:
            document.add_paragraph().add_run(section.caption).italic = True
        blocks = [section.tables, section.figures]
        if section.figures_first:
            blocks.reverse()
        for block in blocks:
            for item in block:
                if hasattr(item, "stem"):
                    _figure(document, item, out)
                else:
                    _table(document, item)
    document.save(path)


def _run_facts(document, meta: dict) -> None:
    facts = [
        ("Patients", str(meta.get("n_patients", ""))),
        ("Snapshot SHA-256", str(meta.get("snapshot_hash", ""))),
        ("Code version", str(meta.get("code_version", ""))),
        ("Generated", str(meta.get("generated_at", ""))),
        ("Months", str(meta.get("months", ""))),
        *fmt.parameter_items(meta.get("parameters", {})),
    ]
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for name, value in facts:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = name, value
        cells[0].paragraphs[0].runs[0].bold = True


def _figure(document, figure, out: Path) -> None:
    png = out / f"{figure.stem}.png"
    if png.exists():
        document.add_picture(str(png), width=FIGURE_WIDTH)
        document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
    caption = document.add_paragraph()
    caption.add_run(figure.title).italic = True
    if figure.at_risk is not None:
        _table(document, figure.at_risk)


def _table(document, table) -> None:
    title = document.add_paragraph()
    title.add_run(table.title).bold = True
    if table.note:
        document.add_paragraph(table.note)
    if table.step_table:
        document.add_paragraph(
            f"{table.total_rows} rows: in {', '.join(table.sources)} (not reproduced here)."
        )
        return
    grid = document.add_table(rows=0, cols=table.width)
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    # The rows as one piece of WordprocessingML, parsed once: python-docx's cell by cell
    # (cell.text, merge, run.font.size) was 0.5 s of CPU per run for the same XML.
    widths = [int(w) for w in grid._tbl.xpath("./w:tblGrid/w:gridCol/@w:w")]
    rows = [_row_xml(widths, [(heading, False) for heading in table.columns], bold=True)]
    for row in table.rows:
        if row.section:
            merged = [sum(widths)]  # one cell spanning the grid, as cells[0].merge(cells[-1])
            rows.append(_row_xml(merged, [(row.cells[0].text, False)], bold=True, span=len(widths)))
            continue
        cells = [(value.text, value.numeric) for value in row.cells[: len(widths)]]
        rows.append(_row_xml(widths, cells, indent=row.indent))
    for tr in parse_xml(f"<w:tbl {nsdecls('w')}>{''.join(rows)}</w:tbl>"):
        grid._tbl.append(tr)
    if table.footnote:
        note = document.add_paragraph()
        note.add_run(table.footnote).font.size = Pt(8)


def _row_xml(widths: list[int], cells: list[tuple[str, bool]], *, bold=False, indent=False, span=1):
    """<w:tr> as python-docx writes it: each cell its width, a merged row one cell spanning the
    grid; text in 9 pt (bold in headings), numbers right-aligned, the first cell of a level
    under a heading indented 0.15 in; cells past the row's values empty."""
    span = f'<w:gridSpan w:val="{span}"/>' if span > 1 else ""
    out = ["<w:tr>"]
    for i, width in enumerate(widths):
        out.append(f'<w:tc><w:tcPr><w:tcW w:type="dxa" w:w="{width}"/>{span}</w:tcPr><w:p>')
        if i < len(cells):
            text, right = cells[i]
            ppr = ('<w:ind w:left="216"/>' if indent and i == 0 else "") + (
                '<w:jc w:val="right"/>' if right else ""
            )
            out.append(f"<w:pPr>{ppr}</w:pPr>" if ppr else "")
            rpr = ("<w:b/>" if bold else "") + '<w:sz w:val="18"/>'
            out.append(f"<w:r><w:rPr>{rpr}</w:rPr>{_run_content(text)}</w:r>")
        out.append("</w:p></w:tc>")
    out.append("</w:tr>")
    return "".join(out)


def _run_content(text: str) -> str:
    """A run's text as python-docx sets it: tabs and line breaks as elements, spaces at either
    end of a piece kept."""
    out = []
    for piece in re.split(r"([\t\r\n])", text):
        if piece == "\t":
            out.append("<w:tab/>")
        elif piece in ("\r", "\n"):
            out.append("<w:br/>")
        elif piece:
            space = ' xml:space="preserve"' if piece.strip() != piece else ""
            out.append(f"<w:t{space}>{escape(piece)}</w:t>")
    return "".join(out)
