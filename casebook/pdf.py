"""A case book as a PDF (ReportLab's Platypus): the content of casebook.content laid out as
tables, with a header on every page (study ID, site, print time, the content's SHA-256, page n of
N). One case at a time, in memory: a case book is tens of kilobytes."""

import io

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from . import content as casebook_content
from .fonts import fonts

PAGE_W, PAGE_H = A4
MARGIN = 14 * mm
HEADER_H = 16 * mm
WIDTH = PAGE_W - 2 * MARGIN
GRID = colors.HexColor("#b8bec6")
SHADE = colors.HexColor("#eef1f4")
TITLE = "Blinatumomab R/R ALL registry"


class Styles:
    def __init__(self, f):
        self.f = f
        base = dict(fontName=f.regular.name, alignment=TA_LEFT)
        self.body = ParagraphStyle("body", fontSize=8.5, leading=10.5, **base)
        self.cell = ParagraphStyle("cell", fontSize=7.5, leading=9, **base)
        self.small = ParagraphStyle("small", fontSize=6.8, leading=8.2, **base)
        bold = dict(base, fontName=f.bold.name)
        self.head = ParagraphStyle("head", fontSize=7.5, leading=9, **bold)
        self.h1 = ParagraphStyle("h1", fontSize=15, leading=19, spaceAfter=4, **bold)
        self.h2 = ParagraphStyle(
            "h2", fontSize=11.5, leading=14, spaceBefore=8, spaceAfter=3, **bold
        )
        self.h3 = ParagraphStyle("h3", fontSize=9, leading=11, spaceBefore=5, spaceAfter=2, **bold)

    def p(self, text, style=None, bold=False):
        return Paragraph(self.f.markup(text, bold=bold), style or self.body)


def _table(rows, widths, header=True, shaded_rows=()):
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("GRID", (0, 0), (-1, -1), 0.4, GRID),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), SHADE))
    for i in shaded_rows:
        style += [("SPAN", (0, i), (-1, i)), ("BACKGROUND", (0, i), (-1, i), SHADE)]
    table.setStyle(TableStyle(style))
    return table


def _cells(s, values, style=None):
    return [s.p(v, style or s.cell) for v in values]


def _header_row(s, names):
    return [s.p(n, s.head, bold=True) for n in names]


def _record(s, record):
    rows, shaded = [], []
    for legend, fields in record.groups:
        if legend:
            shaded.append(len(rows))
            rows.append([s.p(legend, s.head, bold=True), ""])
        for row in fields:
            derived = row.derived and "derived" not in row.label.lower()
            label = f"{row.label} (derived)" if derived else row.label
            rows.append(_cells(s, [label, row.value]))
    if not rows:
        return []
    return [
        CondPageBreak(30 * mm),
        s.p(record.title, s.h3, bold=True),
        _table(rows, [WIDTH * 0.42, WIDTH * 0.58], header=False, shaded_rows=shaded),
    ]


def _story(book, s):
    story = [s.p(f"Case book {book.study_id}", s.h1, bold=True)]
    story.append(_table([_cells(s, r) for r in book.summary], [WIDTH * 0.25, WIDTH * 0.75], False))
    story.append(
        s.p(
            "Every case report form with its values (labelled as on the form, units in the "
            "labels), its status, the queries with their threads, the source data verification, "
            "locks and signatures, and the case's audit trail. De-identified: the registry holds "
            "study IDs, no names or hospital numbers. Times are in "
            f"{book.time_zone or 'UTC'}.",
            s.small,
        )
    )
    story.append(s.p("Case report forms", s.h2, bold=True))
    for crf in book.crfs:
        block = [s.p(f"{crf.label} — {crf.status}", s.h2, bold=True)]
        if crf.facts:
            block.append(
                _table([_cells(s, f) for f in crf.facts], [WIDTH * 0.25, WIDTH * 0.75], False)
            )
        story.append(KeepTogether(block))
        if not crf.records:
            story.append(s.p("No record.", s.small))
        for record in crf.records:
            story += _record(s, record)

    story.append(s.p("Queries", s.h2, bold=True))
    if not book.queries:
        story.append(s.p("No queries on this case.", s.small))
    for q in book.queries:
        where = q.crf if q.target == q.crf else f"{q.crf} · {q.target}"
        title = f"Query #{q.number} · {where} · {q.status}"
        rows = [_header_row(s, ["When", "Who", "Step", "Message"])]
        rows += [_cells(s, e) for e in q.events]
        widths = [WIDTH * 0.17, WIDTH * 0.13, WIDTH * 0.15, WIDTH * 0.55]
        story += [CondPageBreak(25 * mm), s.p(title, s.h3, bold=True), _table(rows, widths)]

    story.append(s.p("Signatures", s.h2, bold=True))
    if book.signatures:
        rows = [_header_row(s, ["Signed by", "Signed at", "Statement", "Voided at", "Why voided"])]
        rows += [_cells(s, r) for r in book.signatures]
        widths = [0.12, 0.15, 0.38, 0.15, 0.20]
        story.append(_table(rows, [WIDTH * w for w in widths]))
    else:
        story.append(s.p("Not signed.", s.small))

    story.append(s.p("Locks", s.h2, bold=True))
    if book.locks:
        rows = [_header_row(s, ["When", "Who", "Action", "Scope", "Reason"])]
        rows += [_cells(s, r) for r in book.locks]
        widths = [0.17, 0.13, 0.12, 0.13, 0.45]
        story.append(_table(rows, [WIDTH * w for w in widths]))
    else:
        story.append(s.p("Never locked.", s.small))

    story.append(s.p("Audit trail (oldest first)", s.h2, bold=True))
    rows = [_header_row(s, ["When", "Who", "Record", "Field", "Old value", "New value", "Reason"])]
    for when, who, record, field, old, new, reason in book.audit:
        if field:
            rows.append(_cells(s, [when, who, record, field, old, new, reason], s.small))
        else:  # a whole record created or removed, as the case page shows it
            rows.append(_cells(s, [when, who, record, f"record {new}", "", "", reason], s.small))
    if len(rows) == 1:
        rows.append(_cells(s, ["No changes recorded.", "", "", "", "", "", ""], s.small))
    widths = [0.13, 0.1, 0.15, 0.17, 0.14, 0.14, 0.17]
    story.append(_table(rows, [WIDTH * w for w in widths]))
    return story


def _numbered_canvas(book, printed, f):
    """A canvas that draws the header once the page count is known (page n of N)."""

    class NumberedCanvas(pdfcanvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):  # noqa: N802 - ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._header(total)
                super().showPage()
            super().save()

        def _header(self, total):
            top = PAGE_H - MARGIN
            self.setStrokeColor(GRID)
            self.setFont(f.bold.name, 9)
            self.drawString(
                MARGIN, top, f.plain(f"{book.study_id} · {book.site_code} {book.site_name}")
            )
            self.drawRightString(PAGE_W - MARGIN, top, f"Page {self._pageNumber} of {total}")
            self.setFont(f.regular.name, 7)
            self.drawString(MARGIN, top - 10, f.plain(f"{TITLE} · case book · printed {printed}"))
            self.drawString(MARGIN, top - 19, f"Content SHA-256: {book.sha256}")
            self.line(MARGIN, top - 23, PAGE_W - MARGIN, top - 23)

    return NumberedCanvas


def render(book, printed_at=None) -> bytes:
    """The case book's PDF bytes."""
    f = fonts()
    printed_at = printed_at or timezone.now()
    printed = timezone.localtime(printed_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + HEADER_H,
        bottomMargin=MARGIN,
        title=f"Case book {book.study_id}",
        author=TITLE,
        subject=f"Content SHA-256 {book.sha256}",
        creator=TITLE,
    )
    story = _story(book, Styles(f))
    story.append(Spacer(1, 4 * mm))
    doc.build(story, canvasmaker=_numbered_canvas(book, printed, f))
    return out.getvalue()


def case_pdf(patient, printed_at=None) -> tuple[bytes, "casebook_content.CaseBook"]:
    book = casebook_content.build(patient)
    return render(book, printed_at), book
