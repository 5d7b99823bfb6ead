"""The pure rule functions, at and around every boundary the paper defines."""

from datetime import date

import pytest

from registry import rules
from registry.rules import CR, CRI, NO_RESPONSE, NOT_EVALUABLE, PROGRESSIVE


@pytest.mark.parametrize(
    "blasts, anc, platelets, expected",
    [
        (2.0, 1.8, 140, CR),
        (4.9, 1.01, 100.1, CR),
        (5.0, 1.8, 140, NO_RESPONSE),  # 5% is not "< 5%"
        (4.9, 1.0, 140, CRI),  # ANC exactly 1.0 is not recovered
        (4.9, 1.8, 100, CRI),  # platelets exactly 100 are not recovered
        (0.0, 0.4, 30, CRI),
        (30.0, 0.2, 10, NO_RESPONSE),
        (None, 1.8, 140, NOT_EVALUABLE),
        (3.0, None, 140, NOT_EVALUABLE),
    ],
)
def test_derive_response_follows_paper_definitions_and_boundaries(blasts, anc, platelets, expected):
    assert rules.derive_response(blasts, anc, platelets) == expected


def test_remission_requires_extramedullary_disease_resolved():
    assert rules.derive_response(1.0, 2.0, 150, rules.EMD_PERSISTENT) == NO_RESPONSE
    assert rules.derive_response(1.0, 2.0, 150, rules.EMD_NOT_ASSESSED) == NO_RESPONSE
    assert rules.derive_response(1.0, 2.0, 150, rules.EMD_RESOLVED) == CR
    assert rules.derive_response(1.0, 0.5, 150, rules.EMD_RESOLVED) == CRI


def test_progression_from_new_emd_or_rising_blasts():
    assert rules.derive_response(1.0, 2.0, 150, rules.EMD_PROGRESSIVE) == PROGRESSIVE
    assert rules.derive_response(50.0, 1, 50, baseline_marrow_blasts_pct=40.0) == PROGRESSIVE
    assert rules.derive_response(49.9, 1, 50, baseline_marrow_blasts_pct=40.0) == NO_RESPONSE


@pytest.mark.parametrize(
    "done, n_abn, modal, kmt2a, expected",
    [
        (True, 0, 46, False, "standard"),
        (True, 4, 46, False, "standard"),
        (True, 5, 46, False, "high"),  # complex karyotype: five or more abnormalities
        (True, 1, 44, False, "standard"),  # 44 is not hypodiploid under the paper's "< 44"
        (True, 1, 43, False, "high"),
        (True, 0, 46, True, "high"),  # KMT2A/MLL rearrangement
        (False, None, None, False, None),
    ],
)
def test_cytogenetic_risk_is_derived_from_findings(done, n_abn, modal, kmt2a, expected):
    assert rules.derive_cytogenetic_risk(done, n_abn, modal, kmt2a) == expected


def test_age_in_completed_years_turns_on_the_birthday():
    assert rules.age_in_years(date(1998, 3, 6), date(2017, 3, 5)) == 18
    assert rules.age_in_years(date(1998, 3, 6), date(2017, 3, 6)) == 19


def test_year_only_birth_is_taken_as_first_of_july():
    assert rules.assumed_birth_date(None, 1970) == date(1970, 7, 1)
    assert rules.assumed_birth_date(date(1970, 2, 1), 1970) == date(1970, 2, 1)


def test_eligibility_lists_every_failed_criterion():
    ok = dict(
        relapsed_refractory=True,
        bcp_all=True,
        ph_negative=True,
        cd19_positive=True,
        burkitt=False,
        age_at_start=19,
    )
    assert rules.eligibility_failures(**ok) == []
    failed = {"relapsed_refractory": False, "ph_negative": False, "burkitt": True}
    fields = [f for f, _ in rules.eligibility_failures(**{**ok, **failed, "age_at_start": 18})]
    assert fields == ["relapsed_refractory", "ph_negative", "burkitt", "birth_year"]


def test_grade_error_names_the_grades_that_exist():
    assert rules.grade_error("Febrile neutropenia", (3, 4, 5), 3) is None
    assert rules.grade_error("Febrile neutropenia", (3, 4, 5), 2) == (
        "CTCAE v4.03 defines Febrile neutropenia only at grade(s) 3, 4, 5; grade 2 does not exist."
    )


def test_best_response_is_the_best_category_ever_reached():
    assert rules.best_response(["NR", "CRi", "PD"]) == CRI
    assert rules.best_response(["PD", "CR", "CRi"]) == CR
    assert rules.best_response(["PD", "NE"]) == PROGRESSIVE
    assert rules.best_response([]) == NOT_EVALUABLE
