"""Reading gettext catalogues (.po) in the tests: each message with its translation and flags."""

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Message:
    msgid: str
    msgid_plural: str | None = None
    msgstr: dict = field(default_factory=dict)  # plural index -> text (0 for a singular)
    flags: list = field(default_factory=list)
    obsolete: bool = False
    line: int = 0

    @property
    def untranslated(self) -> bool:
        return not self.msgstr or any(not text for text in self.msgstr.values())

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags


def read_po(path: Path) -> list[Message]:
    """Every message of a catalogue but its header, in file order."""
    messages, current, part = [], None, None
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        if not line:
            current, part = None, None
            continue
        if line.startswith("#,"):
            current = current or Message("", line=number)
            current.flags += [f.strip() for f in line[2:].split(",")]
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid":
            if current is None or current.msgid or current.msgstr:
                current = Message("", line=number)
            current.obsolete = obsolete
            current.msgid = ast.literal_eval(rest)
            messages.append(current)
            part = ("msgid",)
        elif keyword == "msgid_plural":
            current.msgid_plural = ast.literal_eval(rest)
            part = ("msgid_plural",)
        elif keyword.startswith("msgstr"):
            index = int(keyword[7:-1]) if keyword.startswith("msgstr[") else 0
            current.msgstr[index] = ast.literal_eval(rest)
            part = ("msgstr", index)
        elif keyword == "msgctxt":
            part = ("msgctxt",)
        elif line.startswith('"') and part is not None:
            text = ast.literal_eval(line)
            if part[0] == "msgstr":
                current.msgstr[part[1]] += text
            elif part[0] == "msgid":
                current.msgid += text
            elif part[0] == "msgid_plural":
                current.msgid_plural += text
    return [m for m in messages if m.msgid and not m.obsolete]


def problems(path: Path) -> list[str]:
    """'line N: fuzzy|untranslated: msgid' for each message that is not translated as it is."""
    found = []
    for m in read_po(path):
        if m.fuzzy or m.untranslated:
            kind = "fuzzy" if m.fuzzy else "untranslated"
            found.append(f"{path.name} line {m.line}: {kind}: {m.msgid!r}")
    return found
