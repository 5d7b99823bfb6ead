"""Fonts for the case books: embedded TrueType, chosen per character, never a crash on a glyph.

DejaVu Sans (Debian's fonts-dejavu-core) sets the text: Latin, Greek, Cyrillic, µ, ×, ≥, …
Free-text fields may hold Korean, which DejaVu lacks: those characters are set in Nanum Gothic
(fonts-nanum) when it is installed. A character that no installed font has is written as its code
point, `[U+13000]`, so the archived text keeps what was entered instead of an empty box. Without
DejaVu the built-in Helvetica is used for what it can encode (Latin-1) and the same rule applies.

settings.CASEBOOK_FONT_DIRS (from the environment) lists the folders searched for the files.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from django.conf import settings
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FILES = {
    "CB-Regular": ("DejaVuSans.ttf",),
    "CB-Bold": ("DejaVuSans-Bold.ttf",),
    "CB-Fallback": ("NanumGothic.ttf", "NanumBarunGothic.ttf"),
    "CB-FallbackBold": ("NanumGothicBold.ttf", "NanumBarunGothicBold.ttf", "NanumGothic.ttf"),
}
# What Helvetica (WinAnsi encoding) can set, when DejaVu is missing.
LATIN1 = frozenset(map(chr, [*range(0x20, 0x7F), *range(0xA0, 0x100)]))


@dataclass(frozen=True)
class Face:
    name: str
    covers: frozenset  # the characters (str of length 1) it has a glyph for; never "\n"


@dataclass(frozen=True)
class Fonts:
    regular: Face
    bold: Face
    fallback: Face | None
    fallback_bold: Face | None

    def markup(self, text, bold=False) -> str:
        """`text` as Platypus paragraph markup: XML-escaped, each run of characters in the first
        font that has them, code points for characters none has, line breaks kept."""
        text = str(text)
        main = self.bold if bold else self.regular
        if main.covers.issuperset(text):  # the common case: one font has every character
            return escape(text)
        other = self.fallback_bold if bold else self.fallback
        out, run, run_face = [], [], main

        def flush():
            if run:
                chunk = escape("".join(run))
                out.append(
                    chunk if run_face is main else f'<font name="{run_face.name}">{chunk}</font>'
                )
                run.clear()

        for ch in text:
            code = ord(ch)
            if ch == "\n":
                flush()
                out.append("<br/>")
                continue
            if ch in "\t\r":
                ch, code = " ", 0x20
            if ch in main.covers:
                face = main
            elif other is not None and ch in other.covers:
                face = other
            else:
                face, ch = main, f"[U+{code:04X}]"
            if face is not run_face:
                flush()
                run_face = face
            run.append(ch)
        flush()
        return "".join(out)

    def plain(self, text) -> str:
        """`text` for canvas.drawString in the regular font (headers): unknown characters as
        code points."""
        return "".join(
            ch if ch in self.regular.covers else f"[U+{ord(ch):04X}]" for ch in str(text)
        )


def _find(names) -> Path | None:
    for folder in settings.CASEBOOK_FONT_DIRS:
        root = Path(folder)
        if not root.is_dir():
            continue
        for name in names:
            direct = root / name
            if direct.is_file():
                return direct
            found = next(root.rglob(name), None)
            if found is not None:
                return found
    return None


def _register(name, names) -> Face | None:
    path = _find(names)
    if path is None:
        return None
    font = TTFont(name, str(path))
    pdfmetrics.registerFont(font)
    # Control characters are handled by markup() (line breaks, tabs), never set as glyphs.
    return Face(name, frozenset(chr(c) for c in font.face.charToGlyph if c >= 0x20))


@functools.cache
def fonts() -> Fonts:
    """The case books' fonts, registered with ReportLab once per process."""
    regular = _register("CB-Regular", FILES["CB-Regular"])
    bold = _register("CB-Bold", FILES["CB-Bold"]) or regular
    if regular is None:
        regular, bold = Face("Helvetica", LATIN1), Face("Helvetica-Bold", LATIN1)
    fallback = _register("CB-Fallback", FILES["CB-Fallback"])
    fallback_bold = _register("CB-FallbackBold", FILES["CB-FallbackBold"]) or fallback
    if fallback is not None:
        # Platypus looks bold variants up through the family; each face is its own family here.
        for face in {fallback, fallback_bold}:
            pdfmetrics.registerFontFamily(
                face.name, normal=face.name, bold=face.name, italic=face.name, boldItalic=face.name
            )
    return Fonts(regular, bold, fallback, fallback_bold)
