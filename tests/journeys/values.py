"""What the journeys type into the forms: Hypothesis strategies of field values.

Each CRF field has a pool of plausible values (dates around the case's own dates, counts and
doses in their ranges, the response boundaries 5% / 1.0 / 100) and, now and then, a value a
person might mistype (an impossible date, a negative or non-numeric number, a string too long,
markup). The server decides what is valid: the journeys only check it answers a refusal with a
field error and saves nothing, and that what it saves passes the model's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hypothesis import strategies as st

from registry.models import Patient

TODAY = date.today()

MISTYPED_DATES = ["2017-02-30", "31/12/2016", "yesterday", "0000-00-00", "1899-12-31"]
MISTYPED_DATES.append((TODAY + timedelta(days=3)).isoformat())  # in the future
MISTYPED_NUMBERS = ["-1", "abc", "1e309", "NaN", "1,5", "99999999999", "4.5.6"]
MISTYPED_TEXT = ['<script>alert("x")</script>', "A" * 260, "'; DROP TABLE registry_patient; --"]

REASONS = st.sampled_from(
    [
        "Corrected from the source document",
        "Transcription error",
        "Query answered: value checked",
        "",  # forgot to say why
        "   ",
        "R" * 140,  # longer than the audit trail keeps
        "<b>typo</b> fixed",
    ]
)
MESSAGES = st.sampled_from(
    ["Please check against the source.", "Checked: the value is right.", "", "  ", "<i>ok</i>"]
)

CTCAE_TERMS = [
    "Cytokine release syndrome",
    "Febrile neutropenia",
    "Encephalopathy",
    "Headache",
    "Tremor",
    "Sepsis",
    "Nervous system disorders - Other, specify",
    "Pyrexia",  # not a CTCAE v4.03 term
]


@dataclass
class CaseDates:
    """The dates of a case the CRF values are drawn around."""

    diagnosis: date
    start: date
    death: date | None
    cycles: list  # [(number, start, end)]
    birth_year: int

    @classmethod
    def of(cls, case_pk) -> CaseDates:
        p = Patient.objects.get(pk=case_pk)
        followup = getattr(p, "followup", None)
        cycles = list(p.cycles.order_by("number").values_list("number", "start_date", "end_date"))
        death = followup.death_date if followup else None
        return cls(p.diagnosis_date, p.blinatumomab_start_date, death, cycles, p.birth_year)

    @property
    def last_day(self) -> date:
        """The last day a record of the case can carry: death, or the data cut-off."""
        return min(self.death or TODAY, TODAY)


def sometimes_mistyped(valid, mistyped, one_in=8):
    """Mostly a plausible value, one in `one_in` a mistyped one (the plausible one is the
    simplest: a scripted run that draws the simplest values types plausibly)."""
    return st.integers(0, one_in - 1).flatmap(
        lambda i: st.sampled_from(mistyped) if i == one_in - 1 else valid
    )


def day(start: date, lo: int, hi: int):
    return st.integers(lo, hi).map(lambda n: (start + timedelta(days=n)).isoformat())


def decimal(lo, hi, places=1, special=()):
    plain = st.integers(int(lo * 10**places), int(hi * 10**places)).map(
        lambda n: f"{n / 10**places:.{places}f}"
    )
    if special:
        return st.one_of(st.sampled_from(list(special)), plain)
    return plain


def integer(lo, hi):
    return st.integers(lo, hi).map(str)


def text(*values):
    return st.sampled_from(list(values))


TICK = st.sampled_from(["on", None])  # None: the box is left unticked


def pools(d: CaseDates) -> dict:
    """field name -> strategy of the raw value a person types or picks."""
    s = d.start
    return {
        # registration
        "birth_year": integer(d.birth_year - 3, d.birth_year + 3),
        "birth_date": st.one_of(st.just(""), day(date(d.birth_year, 1, 1), 0, 364)),
        "diagnosis_date": day(s, -900, 0),
        "blinatumomab_start_date": day(s, -3, 3),
        "site_case_number": text("", "H-0042", "site file 7"),
        "sex": text("male", "female"),
        "relapsed_refractory": TICK,
        "bcp_all": TICK,
        "ph_negative": TICK,
        "cd19_positive": TICK,
        "burkitt": st.sampled_from([None, None, None, "on"]),
        # baseline
        "ecog": integer(0, 5),
        "prior_therapies_n": integer(0, 6),
        "prior_allo_sct_date": st.one_of(st.just(""), day(s, -400, 5)),
        "emd_other_specify": text("", "orbit"),
        "marrow_blasts_pct": decimal(0, 100, special=["4.9", "5.0", "5.1", "0", "100", ""]),
        "pb_blasts_per_ul": st.one_of(st.just(""), integer(0, 90000)),
        "cyto_dx_abnormalities_n": st.one_of(st.just(""), integer(0, 9)),
        "cyto_dx_modal_number": st.one_of(st.just(""), integer(30, 50)),
        "cyto_start_abnormalities_n": st.one_of(st.just(""), integer(0, 9)),
        "cyto_start_modal_number": st.one_of(st.just(""), integer(30, 50)),
        "prephase_other": text("", "Vincristine + dexamethasone"),
        "dexamethasone_mg_before": decimal(0, 400, special=["0", "80"]),
        # cycles
        "number": integer(1, 4),
        "start_date": day(s, 0, 200),
        "end_date": st.one_of(st.just(""), day(s, 20, 230)),
        "starting_dose_ug_per_day": st.sampled_from(["9", "28", "15", "0", "113"]),
        "step_up_day": st.sampled_from(["", "8", "15", "1"]),
        "step_up_dose_ug_per_day": st.sampled_from(["", "28", "9", "112"]),
        "interruption_days": integer(0, 5),
        "interruption_reason": text("", "Cytokine release syndrome", "Neurotoxicity"),
        # assessments: the response boundaries
        "assessment_date": day(s, 25, 240),
        "anc_10e9_per_l": decimal(0, 5, 2, special=["1.00", "1.01", "0.99", ""]),
        "platelets_10e9_per_l": decimal(0, 400, special=["100.0", "100.1", "99.9", ""]),
        "mrd_level": st.sampled_from(["", "0.0001", "0.00005", "0.02", "2"]),
        # adverse events
        "ctcae_term": st.sampled_from(CTCAE_TERMS),
        "other_specify": text("", "Aphasia"),
        "onset_date": day(s, 0, 60),
        "resolution_date": st.one_of(st.just(""), day(s, 2, 90)),
        # transplant, subsequent therapy
        "sct_date": day(s, 60, 300),
        "regimen": text("FLAG-Ida", "Inotuzumab ozogamicin", "Ponatinib"),
        # follow-up
        "last_contact_date": day(s, 60, 700),
        "relapse_or_progression_date": st.one_of(st.just(""), day(s, 30, 400)),
        "death_date": st.one_of(st.just(""), day(s, 60, 700)),
        "death_cause_detail": text("", "pneumonia"),
    }


def mistyped_for(kind: str):
    if kind == "date":
        return MISTYPED_DATES
    if kind == "number":
        return MISTYPED_NUMBERS
    return MISTYPED_TEXT


def value_for(form_field, d: CaseDates):
    """A strategy of what a person enters in one rendered field."""
    if form_field.kind == "checkbox":
        return pools(d).get(form_field.name, TICK)
    if form_field.kind == "select":
        offered = [v for v, _label, _sel in form_field.options]
        return st.sampled_from(offered) if offered else st.just("")
    valid = pools(d).get(form_field.name)
    if valid is None:
        valid = {
            "date": day(d.start, 0, 200),
            "number": integer(0, 20),
        }.get(form_field.kind, text("", "note"))
    return sometimes_mistyped(valid, mistyped_for(form_field.kind))


ENTERED = ("text", "number", "date", "select", "checkbox", "textarea", "email", "search")


# Fields whose change no other field's rule depends on, with values each rule accepts: a careful
# edit changes only these, so that saves that go through are frequent enough to follow.
CAREFUL = {
    "sex": text("male", "female"),
    "site_case_number": text("", "H-0042", "site file 7"),
    "ecog": integer(0, 4),
    "prior_therapies_n": integer(1, 6),
    "pb_blasts_per_ul": st.one_of(st.just(""), integer(0, 90000)),
    "dexamethasone_mg_before": decimal(0, 400, special=["0", "80"]),
    "salvage_phase": text("1", "2", "3"),
    "dexamethasone_premedication": TICK,
    "marrow_blasts_pct@assessments": decimal(0, 100, special=["4.9", "5.0", "5.1", "0", "100"]),
    "anc_10e9_per_l": decimal(0, 5, 2, special=["1.00", "1.01", "0.99", ""]),
    "platelets_10e9_per_l": decimal(0, 400, special=["100.0", "100.1", "99.9", ""]),
    "emd_status": text("none", "resolved", "persistent", "progressive", "not_assessed"),
    "serious": TICK,
    "attribution": text("unrelated", "unlikely", "possible", "probable", "definite"),
    "action_taken": text("none", "interrupted", "discontinued"),
    "donor_type": text("matched_sibling", "matched_unrelated", "haploidentical", "cord_blood"),
    "regimen": text("FLAG-Ida", "Inotuzumab ozogamicin", "Ponatinib"),
    "category": text("salvage_chemotherapy", "targeted", "cellular", "other"),
    "death_cause_detail": text("", "pneumonia"),
}


@st.composite
def changes(draw, form, d: CaseDates, kind="", most=3):
    """A few of the form's fields changed, as a person edits a CRF: carefully (only fields no
    other rule depends on, valid values) or anyhow (any field, now and then mistyped)."""
    names = [f.name for f in form.fields if f.kind in ENTERED and f.name != "change_reason"]
    careful = {n: CAREFUL.get(f"{n}@{kind}", CAREFUL.get(n)) for n in names}
    careful = {n: strategy for n, strategy in careful.items() if strategy is not None}
    how = draw(st.sampled_from(["carefully", "anyhow"]), label="edits") if careful else "anyhow"
    if how == "carefully":
        chosen = draw(st.lists(st.sampled_from(sorted(careful)), min_size=1, max_size=2,
                               unique=True))  # fmt: skip
        return {name: draw(careful[name], label=name) for name in chosen}
    if not names:
        return {}
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=most, unique=True))
    return {name: draw(value_for(form.field(name), d), label=name) for name in chosen}


def new_record(kind: str, form, d: CaseDates) -> dict:
    """A record of a repeating kind filled in the way the site would, before any drawn change:
    a next cycle after the last one, an assessment after the last cycle, an adverse event in
    the first week, a subsequent therapy after the last cycle."""
    last = d.cycles[-1] if d.cycles else None
    after_last = (last[2] or last[1]) if last else d.start
    if kind == "cycles":
        start = d.start if not last else after_last + timedelta(days=14)
        return {
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=27)).isoformat(),
            "outcome": "completed",
        }
    if kind == "assessments":
        cycle = form.field("cycle")
        offered = [v for v, _label, _sel in (cycle.options if cycle else []) if v]
        return {
            "cycle": offered[-1] if offered else "",
            "assessment_date": (after_last + timedelta(days=2)).isoformat(),
            "marrow_blasts_pct": "3.0",
            "anc_10e9_per_l": "1.50",
            "platelets_10e9_per_l": "150.0",
            "emd_status": "none",
            "mrd_status": "not_done",
        }
    if kind == "adverse-events":
        return {
            "ctcae_term": "Cytokine release syndrome",
            "grade": "2",
            "onset_date": (d.start + timedelta(days=2)).isoformat(),
            "resolution_date": (d.start + timedelta(days=5)).isoformat(),
            "attribution": "possible",
            "action_taken": "none",
            "outcome": "recovered",
        }
    if kind == "subsequent-therapies":
        return {
            "category": "other",
            "regimen": "Inotuzumab ozogamicin",
            "start_date": (after_last + timedelta(days=20)).isoformat(),
        }
    raise ValueError(kind)


def registration(site_option: str, d_start: date) -> dict:
    """A new eligible patient, as the registration page is filled in."""
    return {
        "institution": site_option,
        "bcp_all": "on",
        "ph_negative": "on",
        "cd19_positive": "on",
        "burkitt": None,
        "birth_year": "1968",
        "birth_date": "",
        "blinatumomab_start_date": d_start.isoformat(),
        "sex": "female",
        "diagnosis_date": (d_start - timedelta(days=400)).isoformat(),
        "site_case_number": "",
    }
