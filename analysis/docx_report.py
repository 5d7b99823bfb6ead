"""report.docx: the run for the manuscript, as a Word document (python-docx).

The same sections as report.html and the dashboard (analysis.display): every table a real Word
table with the formatted text of the page, every figure embedded as its PNG, with its title
and footnote. Long step-function tables stay in their CSVs (a sentence says so).
"""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
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
    grid = document.add_table(rows=1, cols=table.width)
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, heading in zip(grid.rows[0].cells, table.columns, strict=True):
        cell.text = heading
        _bold(cell)
    for row in table.rows:
        cells = grid.add_row().cells
        if row.section:
            merged = cells[0].merge(cells[-1]) if table.width > 1 else cells[0]
            merged.text = row.cells[0].text
            _bold(merged)
            continue
        for cell, value in zip(cells, row.cells, strict=False):
            cell.text = value.text
            if value.numeric:
                cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
        if row.indent:
            cells[0].paragraphs[0].paragraph_format.left_indent = Inches(0.15)
    for row in grid.rows:
        for cell in row.cells:
            for paragraph in cell.paragraphs:
                for run in paragraph.runs:
                    run.font.size = Pt(9)
    if table.footnote:
        note = document.add_paragraph()
        note.add_run(table.footnote).font.size = Pt(8)


def _bold(cell) -> None:
    for paragraph in cell.paragraphs:
        for run in paragraph.runs:
            run.bold = True
