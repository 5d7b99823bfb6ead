"""The study's domain rules as small pure functions.

Models, forms, imports and the analysis all call these; nothing else restates them.
Definitions follow the Methods of Jung et al., Ann Hematol 2018.
"""

from datetime import MAXYEAR, MINYEAR, date

# Messages and labels are translated (README "Languages"); gettext is called only when a rule
# fails, so the pure statistics that use these functions need no Django settings.
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

# --- Eligibility -------------------------------------------------------------------------

# The paper enrols patients "aged > 18 years". Applied literally on completed years of age:
# an 18-year-old is refused, a 19-year-old is accepted.
MIN_AGE_EXCLUSIVE_YEARS = 18


def age_in_years(birth_date: date, on: date):
    """Completed years of age on a date.

    Arithmetic only, so that it also takes whole columns: anything with .year, .month and .day
    (the analysis dataset passes numpy arrays of them, one per patient)."""
    had_birthday = on.month * 100 + on.day >= birth_date.month * 100 + birth_date.day
    return on.year - birth_date.year - (1 - had_birthday)


def assumed_birth_date(birth_date: date | None, birth_year: int | None) -> date | None:
    """Birth date, or 1 July of the birth year when only the year is known.

    Mid-year is the usual registry convention: it is wrong by at most six months.
    """
    if birth_date:
        return birth_date
    if birth_year and MINYEAR <= birth_year <= MAXYEAR:  # else no date: the field says why
        return date(birth_year, 7, 1)
    return None


def eligibility_failures(
    *,
    relapsed_refractory: bool,
    bcp_all: bool,
    ph_negative: bool,
    cd19_positive: bool,
    burkitt: bool,
    age_at_start: int | None,
) -> list[tuple[str, str]]:
    """(field, reason) for every eligibility criterion the patient fails; empty when eligible."""
    failures = []
    if not relapsed_refractory:
        failures.append(
            (
                "relapsed_refractory",
                gettext("The study includes relapsed or refractory ALL only."),
            )
        )
    if not bcp_all:
        failures.append(("bcp_all", gettext("The study includes B-cell precursor ALL only.")))
    if not ph_negative:
        failures.append(
            (
                "ph_negative",
                gettext("Philadelphia-positive ALL is excluded: the study is Ph-negative only."),
            )
        )
    if not cd19_positive:
        failures.append(
            (
                "cd19_positive",
                gettext("Blinatumomab targets CD19: CD19 expression at diagnosis is required."),
            )
        )
    if burkitt:
        failures.append(
            ("burkitt", gettext("Burkitt leukaemia/lymphoma is excluded from the study."))
        )
    if age_at_start is not None and age_at_start <= MIN_AGE_EXCLUSIVE_YEARS:
        failures.append(
            (
                "birth_year",
                gettext(
                    "Patients must be older than %(min)s at blinatumomab start; this patient "
                    "was %(age)s."
                )
                % {"min": MIN_AGE_EXCLUSIVE_YEARS, "age": age_at_start},
            )
        )
    return failures


# --- Cytogenetic risk ----------------------------------------------------------------------

COMPLEX_KARYOTYPE_MIN_ABNORMALITIES = 5  # "five or more chromosomal abnormalities"
HYPODIPLOID_BELOW_CHROMOSOMES = 44  # "hypodiploidy (< 44 chromosomes)"

RISK_STANDARD = "standard"
RISK_HIGH = "high"


def derive_cytogenetic_risk(
    done: bool,
    abnormalities_n: int | None,
    modal_chromosome_n: int | None,
    kmt2a_rearranged: bool | None,
) -> str | None:
    """'high', 'standard', or None when cytogenetics were not done.

    High risk: complex karyotype (>= 5 abnormalities), hypodiploidy (< 44 chromosomes: 44 itself
    is standard), or KMT2A/MLL rearrangement.
    """
    if not done:
        return None
    if kmt2a_rearranged:
        return RISK_HIGH
    if abnormalities_n is not None and abnormalities_n >= COMPLEX_KARYOTYPE_MIN_ABNORMALITIES:
        return RISK_HIGH
    if modal_chromosome_n is not None and modal_chromosome_n < HYPODIPLOID_BELOW_CHROMOSOMES:
        return RISK_HIGH
    return RISK_STANDARD


# --- Response ---------------------------------------------------------------------------------

CR = "CR"
CRI = "CRi"
NO_RESPONSE = "NR"
PROGRESSIVE = "PD"
NOT_EVALUABLE = "NE"
RESPONSE_CHOICES = [
    (CR, _("Complete remission (CR)")),
    (CRI, _("CR with incomplete blood count recovery (CRi)")),
    (NO_RESPONSE, _("No response")),
    (PROGRESSIVE, _("Progressive disease")),
    (NOT_EVALUABLE, _("Not evaluable")),
]
RESPONDER_CATEGORIES = frozenset({CR, CRI})
# Best overall response: the first category in this order that a patient ever reached.
BEST_RESPONSE_ORDER = [CR, CRI, NO_RESPONSE, PROGRESSIVE]


def best_response(categories) -> str:
    """Best response over a patient's assessments; NE when none could be judged."""
    found = set(categories)
    return next((c for c in BEST_RESPONSE_ORDER if c in found), NOT_EVALUABLE)


# Evaluable for response: a determinable response (CR, CRi, NR or PD) at some assessment, i.e. a
# best response other than NE -- the paper's 49 of 50. Neither a patient without any assessment
# (who died first, or has not reached one) nor one whose every assessment was NE is evaluable.
DETERMINABLE_RESPONSES = frozenset(BEST_RESPONSE_ORDER)
# English where it is written into files (the analysis dataset's definitions); pages and the
# codebook show gettext(EVALUABLE_DEFINITION).
EVALUABLE_DEFINITION = gettext_noop(
    "a determinable response (CR, CRi, NR or PD) at some response assessment; a patient "
    "without any assessment, or whose every assessment was NE, is not evaluable"
)


def is_evaluable(categories) -> bool:
    """Whether a patient with these assessment responses is evaluable for response."""
    return best_response(categories) in DETERMINABLE_RESPONSES


# Boundaries, as the paper words them: remission needs blasts strictly below 5%; recovery needs
# ANC strictly above 1.0 x10^9/L and platelets strictly above 100 x10^9/L. A value exactly on a
# boundary is therefore NOT remission (blasts 5.0%) or NOT recovered (ANC 1.0, platelets 100).
REMISSION_BLASTS_BELOW_PCT = 5.0
ANC_RECOVERED_ABOVE = 1.0
PLATELETS_RECOVERED_ABOVE = 100.0
# Progression: blasts rising by at least a quarter over the baseline value (a common criterion in
# the blinatumomab trials), or new/progressive extramedullary disease.
PROGRESSION_RELATIVE_RISE = 0.25

EMD_NONE = "none"
EMD_RESOLVED = "resolved"
EMD_PERSISTENT = "persistent"
EMD_PROGRESSIVE = "progressive"
EMD_NOT_ASSESSED = "not_assessed"
EMD_STATUS_CHOICES = [
    (EMD_NONE, _("No extramedullary disease (none at baseline, none now)")),
    (EMD_RESOLVED, _("Resolved")),
    (EMD_PERSISTENT, _("Persistent / stable")),
    (EMD_PROGRESSIVE, _("New or progressive")),
    (EMD_NOT_ASSESSED, _("Present at baseline, not re-assessed")),
]


def derive_response(
    marrow_blasts_pct: float | None,
    anc_10e9_per_l: float | None,
    platelets_10e9_per_l: float | None,
    emd_status: str = EMD_NONE,
    baseline_marrow_blasts_pct: float | None = None,
) -> str:
    """Response category from an assessment's values.

    CR:  blasts < 5% and ANC > 1.0 and platelets > 100, extramedullary disease absent/resolved.
    CRi: blasts < 5% with ANC <= 1.0 or platelets <= 100, extramedullary disease absent/resolved.
    PD:  new or progressive extramedullary disease, or blasts >= 5% and >= 25% above baseline.
    NR:  anything else that can be judged (including blasts < 5% with EMD not resolved).
    NE:  marrow not assessed, or blasts < 5% with a count missing so CR and CRi can't be told apart.
    """
    if emd_status == EMD_PROGRESSIVE:
        return PROGRESSIVE
    if marrow_blasts_pct is None:
        return NOT_EVALUABLE
    if marrow_blasts_pct < REMISSION_BLASTS_BELOW_PCT:
        if emd_status not in (EMD_NONE, EMD_RESOLVED):
            return NO_RESPONSE
        if anc_10e9_per_l is None or platelets_10e9_per_l is None:
            return NOT_EVALUABLE
        recovered = (
            anc_10e9_per_l > ANC_RECOVERED_ABOVE
            and platelets_10e9_per_l > PLATELETS_RECOVERED_ABOVE
        )
        return CR if recovered else CRI
    if (
        baseline_marrow_blasts_pct is not None
        and baseline_marrow_blasts_pct > 0
        and marrow_blasts_pct >= baseline_marrow_blasts_pct * (1 + PROGRESSION_RELATIVE_RISE)
    ):
        return PROGRESSIVE
    return NO_RESPONSE


# --- CTCAE grades ---------------------------------------------------------------------------


def grade_error(term_name: str, allowed_grades: tuple[int, ...], grade: int) -> str | None:
    """Message when a grade does not exist for a CTCAE term, else None."""
    if grade in allowed_grades:
        return None
    listed = ", ".join(str(g) for g in allowed_grades)
    # The term's name stays as CTCAE (MedDRA) spells it, in English, in every language.
    return gettext(
        "CTCAE v4.03 defines %(term)s only at grade(s) %(grades)s; grade %(grade)s does not exist."
    ) % {"term": term_name, "grades": listed, "grade": grade}
