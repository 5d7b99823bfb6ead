"""The CTCAE v4.03 dictionary shipped with the project (registry/data/, provenance there)."""

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
DICTIONARY_CSV = DATA_DIR / "ctcae_v4.03_subset.csv"
TABLE3_MAP_CSV = DATA_DIR / "ctcae_table3_map.csv"
OTHER_SPECIFY_SUFFIX = " - Other, specify"


@dataclass(frozen=True)
class Term:
    soc: str
    term: str
    meddra_code: str
    grades: tuple[int, ...]
    grade_definitions: dict

    @property
    def is_other_specify(self) -> bool:
        return self.term.endswith(OTHER_SPECIFY_SUFFIX)

    def label(self) -> str:
        return f"{self.term} (grades {', '.join(map(str, self.grades))})"


@cache
def terms() -> dict[str, Term]:
    """All terms by name, including one "Other, specify" per system organ class."""
    by_name: dict[str, Term] = {}
    with DICTIONARY_CSV.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_name[row["term"]] = Term(
                soc=row["soc"],
                term=row["term"],
                meddra_code=row["meddra_code"],
                grades=tuple(int(g) for g in row["grades"].split(",")),
                grade_definitions={g: row[f"grade{g}"] for g in range(1, 6) if row[f"grade{g}"]},
            )
    for soc in sorted({t.soc for t in by_name.values()}):
        name = soc + OTHER_SPECIFY_SUFFIX
        if name not in by_name:
            by_name[name] = Term(soc, name, "", (1, 2, 3, 4, 5), {5: "Death"})
    return by_name


def get(term_name: str) -> Term | None:
    return terms().get(term_name)


def term_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Choices grouped by system organ class, for forms and the admin."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for t in sorted(terms().values(), key=lambda t: (t.soc, t.is_other_specify, t.term)):
        groups.setdefault(t.soc, []).append((t.term, t.term))
    return sorted(groups.items())


@cache
def picklist_html():
    """The AE form's term datalist and its grade dictionary (JSON), rendered once per process:
    ~800 terms are the same on every request and were a third of the page's rendering time."""
    from django.utils.html import format_html, format_html_join, json_script

    datalist = format_html_join("", '<option value="{}"></option>', ((t,) for t in terms()))
    dictionary = {
        t.term: {"grades": t.grades, "definitions": t.grade_definitions} for t in terms().values()
    }
    return format_html(
        '<datalist id="ctcae-terms">{}</datalist>\n{}',
        datalist,
        json_script(dictionary, "ctcae-dictionary"),
    )
