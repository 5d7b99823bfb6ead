"""'Evaluable' and the censoring rule mean one thing everywhere: the rule (registry.rules and
analysis.dataset), the dataset labels (SPSS/Stata), the codebook, the README and the report."""

import csv
import html
import io
import re
from pathlib import Path

from analysis import outputs
from analysis.dataset import CENSORING_DEFINITION, DEFINITIONS, VARIABLES
from exchange import codebook
from registry import rules

README = Path(__file__).resolve().parents[2] / "README.md"


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_evaluable_is_a_determinable_response_at_some_assessment():
    assert rules.is_evaluable([]) is False  # no assessment (died before one)
    assert rules.is_evaluable(["NE", "NE"]) is False  # assessed, nothing determinable
    assert rules.is_evaluable(["NE", "PD"]) is True
    assert all(rules.is_evaluable([c]) for c in ("CR", "CRi", "NR", "PD"))


def test_readme_column_table_is_the_dataset_labels():
    text = README.read_text()
    section = text[text.index("Columns of `analysis_dataset.csv`") : text.index("Definitions (")]
    table = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", section, flags=re.M))
    expected = {}
    for name, (label, values) in VARIABLES.items():
        coded = f" ({', '.join(f'{k} = {v}' for k, v in values.items())})" if values else ""
        expected[name] = label + coded
    assert list(table) == list(VARIABLES)
    assert table == expected
    assert "determinable response" in VARIABLES["evaluable"][0]


def test_readme_states_the_rules_as_the_code_does():
    text = flat(README.read_text())
    assert rules.EVALUABLE_DEFINITION in text
    assert CENSORING_DEFINITION in text
    flow = next(line for line in README.read_text().splitlines() if "`flow.csv`" in line)
    assert "died_before_assessment (dead without any response assessment)" in flow
    assert "assessed_not_determinable" in flow and "alive_not_assessed" in flow


def test_codebook_gives_each_rule_of_the_dataset():
    rows = {
        r["variable"]: r
        for r in csv.DictReader(io.StringIO(codebook.codebook_csv()))
        if r["source"] == "analysis.dataset.VARIABLES"
    }
    assert rules.EVALUABLE_DEFINITION in rows["evaluable"]["rule"]
    for name in ("efs_days", "efs_event", "os_days", "os_event"):
        assert CENSORING_DEFINITION in rows[name]["rule"], name
    assert rows["best_response"]["rule"].startswith(DEFINITIONS["best_response"])


def test_the_report_states_the_definitions(tmp_path):
    meta = {"snapshot_hash": "0" * 64, "n_patients": 1, "parameters": {}}
    report = outputs.render_report([], meta)
    for column in ("evaluable", "best_response", "efs_days", "os_days"):
        assert html.escape(DEFINITIONS[column]) in report, column
    assert html.escape(rules.EVALUABLE_DEFINITION) in report
