"""Sites, people and cases for the case-book tests (the monitoring tests' own fixtures)."""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

from tests.monitoring.conftest import (  # noqa: F401 - fixtures
    case,
    complete_all,
    full_case,
    investigator,
    kr01,
    kr02,
    monitor,
    monitor2,
    superuser,
    url,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots" / "casebook"


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page, read back with pypdf."""
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(BytesIO(data)).pages]


def squash(text: str) -> str:
    """Text without any whitespace: table cells wrap lines where they like."""
    return re.sub(r"\s+", "", text)


def pdftotext(data: bytes, tmp_path) -> str:
    """The text as poppler's pdftotext reads it."""
    path = tmp_path / "book.pdf"
    path.write_bytes(data)
    return subprocess.run(
        [shutil.which("pdftotext") or "pdftotext", "-enc", "UTF-8", str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def save_page_png(data: bytes, tmp_path, name: str, page: int = 1) -> Path:
    """A PNG of one page (pdftoppm), kept with the test screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    prefix = SCREENSHOTS / name
    subprocess.run(
        [
            shutil.which("pdftoppm") or "pdftoppm",
            "-png",
            "-r",
            "80",
            "-f",
            str(page),
            "-l",
            str(page),
            "-singlefile",
            str(path),
            str(prefix),
        ],
        check=True,
        capture_output=True,
    )
    return prefix.with_suffix(".png")


class HistoryTable(HTMLParser):
    """The rows of the case page's change history (registry/_history.html), as text cells."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_table, self._row, self._cell = [], False, None, None

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class", "") or ""
        if tag == "table" and "history" in classes.split():
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._row = []
        elif self._in_table and self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._in_table and tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def history_rows(html: str) -> list[list[str]]:
    parser = HistoryTable()
    parser.feed(html)
    return [row for row in parser.rows[1:] if row]  # without the header row
