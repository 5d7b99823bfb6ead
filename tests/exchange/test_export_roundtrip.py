"""export_cases writes the registry in the import template's format; importing the export into an
empty registry gives the same analysis dataset, byte for byte, and the same export again."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.dataset import iter_dataset_csv
from exchange import export, spec, template
from registry import demo
from registry.management.commands.seed_demo import Command as SeedDemo
from registry.models import Baseline, FollowUp, Institution, Patient, SubsequentTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db


def dataset_bytes() -> bytes:
    return "".join(iter_dataset_csv()).encode()


def export_dir(path, *args) -> str:
    out = io.StringIO()
    call_command("export_cases", str(path), *args, stdout=out, stderr=out)
    return out.getvalue()


def files_of(path) -> dict[str, bytes]:
    return {rt.filename: (path / rt.filename).read_bytes() for rt in spec.RECORD_TYPES}


def empty_the_registry():
    """Every case gone (the sites stay): the registry an export is imported into."""
    SeedDemo().delete_cases(Institution.objects.all())
    assert not Patient.objects.exists()


def import_dir(path):
    call_command("import_cases", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def round_trip(tmp_path):
    """Export, empty the registry, import the export: the datasets and exports before and
    after."""
    before = dataset_bytes()
    first, second = tmp_path / "first", tmp_path / "second"
    export_dir(first)
    empty_the_registry()
    import_dir(first)
    export_dir(second)
    return before, dataset_bytes(), files_of(first), files_of(second)


def rows_of(path, rt) -> list[dict]:
    with (path / rt.filename).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def many_rows(settings):
    settings.IMPORT_MAX_ROWS = 100_000  # the command reads the whole export in one go


def test_the_demo_twin_survives_export_and_import_byte_for_byte(tmp_path, many_rows):
    call_command("seed_demo", allow_production=True, stdout=io.StringIO())
    before, after, first, second = round_trip(tmp_path)
    assert Patient.objects.count() == 50
    assert after == before
    assert second == first


def test_each_file_has_exactly_the_template_columns_in_the_template_dialect(tmp_path):
    f.followup(f.patient())
    export_dir(tmp_path)
    for rt in spec.RECORD_TYPES:
        data = (tmp_path / rt.filename).read_bytes()
        assert data.startswith(template.csv_header(rt)), rt.filename


def test_cells_are_written_as_the_importer_reads_them(tmp_path):
    p = f.patient(site_case_number="H-17")
    f.baseline(p, marrow_blasts_pct=Decimal("5.0"), dexamethasone_mg_before=Decimal("120.5"))
    c = f.cycle(p)
    f.assessment(p, c, anc_10e9_per_l=Decimal("1.05"), mrd_status="positive", mrd_level=1e-05)
    f.adverse_event(p, c)
    export_dir(tmp_path)
    case = rows_of(tmp_path, spec.PATIENTS)[0]
    assert (case["institution"], case["site_case_number"]) == ("KR01", "H-17")
    assert (case["birth_date"], case["relapsed_refractory"], case["burkitt"]) == (
        "1972-04-15",
        "yes",
        "no",
    )
    assert (case["marrow_blasts_pct"], case["dexamethasone_mg_before"]) == ("5.0", "120.5")
    assessment = rows_of(tmp_path, spec.ASSESSMENTS)[0]
    assert (assessment["study_id"], assessment["site_case_number"]) == ("", "H-17")
    assert (assessment["cycle_number"], assessment["anc_10e9_per_l"]) == ("1", "1.05")
    assert assessment["mrd_level"] == "1e-05"
    event = rows_of(tmp_path, spec.ADVERSE_EVENTS)[0]
    assert (event["ctcae_term"], event["attribution"], event["serious"]) == (
        "Cytokine release syndrome",
        "probable",
        "yes",
    )


def test_a_case_without_a_site_case_number_is_named_by_its_study_id(tmp_path, many_rows):
    p = f.patient()  # registered on the web form: no site case number
    f.baseline(p)
    f.followup(p)
    export_dir(tmp_path)
    assert rows_of(tmp_path, spec.PATIENTS)[0]["site_case_number"] == p.study_id
    assert rows_of(tmp_path, spec.FOLLOW_UP)[0]["site_case_number"] == p.study_id
    empty_the_registry()
    import_dir(tmp_path)
    again = Patient.objects.get()
    assert (again.study_id, again.followup.last_contact_date) == (
        p.study_id,
        p.blinatumomab_start_date + timedelta(days=240),
    )


def test_text_is_written_verbatim_so_formula_like_text_survives_the_trip(tmp_path, many_rows):
    """A data-exchange file, not a spreadsheet export: no quote before =, or it would be
    imported as part of the value (README "Exports opened in spreadsheets")."""
    p = f.patient(site_case_number="=1+1")
    f.baseline(p, prephase_regimen="other", prephase_other='=HYPERLINK("x", "a, b")\nline 2')
    f.followup(
        p,
        vital_status=FollowUp.DEAD,
        death_date=p.blinatumomab_start_date + timedelta(days=200),
        last_contact_date=p.blinatumomab_start_date + timedelta(days=200),
        death_cause="other",
        death_cause_detail='-2 @home, "quoted" 한국어',
    )
    export_dir(tmp_path)
    assert rows_of(tmp_path, spec.PATIENTS)[0]["site_case_number"] == "=1+1"
    empty_the_registry()
    import_dir(tmp_path)
    again = Patient.objects.get()
    assert again.site_case_number == "=1+1"
    assert again.baseline.prephase_other == '=HYPERLINK("x", "a, b")\nline 2'
    assert again.followup.death_cause_detail == '-2 @home, "quoted" 한국어'


def test_institution_option_exports_one_site_and_refuses_an_unknown_one(tmp_path):
    f.patient()
    f.patient(site=f.institution("KR02", "Second"))
    export_dir(tmp_path, "--institution", "KR02")
    assert [r["institution"] for r in rows_of(tmp_path, spec.PATIENTS)] == ["KR02"]
    with pytest.raises(CommandError, match="No site with code ZZ99"):
        export_dir(tmp_path / "none", "--institution", "ZZ99")


def test_cases_that_share_a_site_case_number_are_named_in_a_warning(tmp_path):
    f.patient(site_case_number="A1")
    f.patient(site_case_number="A1")
    assert "several cases at KR01 are named “A1”" in export_dir(tmp_path)
    # A site case number that is another case's study ID, which names a case without one.
    f.patient(site_case_number="KR01-004")
    f.patient()  # KR01-004
    printed = export_dir(tmp_path / "again")
    assert "named “KR01-004”" in printed and "named “A1”" in printed


def test_study_ids_keep_their_order_past_999_cases_of_a_site():
    """patients.csv follows the order study IDs were given in (KR01-1000 after KR01-999), so an
    empty registry that imports it gives each case the same study ID again."""
    site = f.institution()
    for sequence in (999, 1000, 1001):
        p = f.patient(site=site)
        Patient.objects.filter(pk=p.pk).update(sequence=sequence, study_id=f"KR01-{sequence:03d}")
    rows = list(export.iter_rows(spec.PATIENTS, Patient.objects.all()))[1:]
    assert [r[1] for r in rows] == ["KR01-999", "KR01-1000", "KR01-1001"]


def test_a_de_identified_export_leaves_out_birth_date_and_site_case_number(tmp_path):
    p = f.patient(site_case_number="H-1")
    f.baseline(p)
    rows = list(export.iter_rows(spec.PATIENTS, Patient.objects.all(), full_sites=set()))
    case = dict(zip(rows[0], rows[1], strict=True))
    assert (case["site_case_number"], case["birth_date"], case["birth_year"]) == (
        p.study_id,
        "",
        "1972",
    )


# --- Generated registries -----------------------------------------------------------------------

# Text as the forms store it (stripped, without the characters every record refuses), with the
# characters a CSV must quote and the prefixes a spreadsheet would run.
TEXT = (
    st.text(
        alphabet=st.one_of(
            st.sampled_from(list(",\"\n\r\t=+-@'; ")),
            st.characters(
                blacklist_categories=("Cc", "Cs", "Cf", "Co", "Cn", "Zl", "Zp"),
                max_codepoint=0xFFFF,
            ),
        ),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
ONE_PLACE = st.integers(0, 1000).map(lambda n: Decimal(n).scaleb(-1))  # 0.0 ... 100.0


@st.composite
def edge_case(draw, number):
    """One case built through full_clean() with values at the edges of what the rules allow:
    the optional birth date, boundary decimals, tiny floats, free text of every kind."""
    born = draw(st.integers(1930, 1990))
    start = date(2016, 1, 1) + timedelta(days=draw(st.integers(0, 700)))
    return {
        "site": draw(st.sampled_from(["KR01", "KR02"])),
        # Unique at the site, and never another case's study ID (KR01-001).
        "site_case_number": draw(st.one_of(st.just(""), TEXT.map(lambda t: f"E{number}-{t}"))),
        "birth_date": draw(st.one_of(st.none(), st.just(date(born, 3, 9)))),
        "born": born,
        "start": start,
        "diagnosis": start - timedelta(days=draw(st.integers(0, 2000))),
        "marrow": draw(ONE_PLACE),
        "dex": draw(st.integers(0, 100_000).map(lambda n: Decimal(n).scaleb(-1))),
        "prephase_other": draw(TEXT),
        "anc": draw(st.integers(0, 9999).map(lambda n: Decimal(n).scaleb(-2))),
        "mrd_level": draw(st.one_of(st.none(), st.floats(1e-7, 0.99))),
        "cycles": draw(st.integers(0, 2)),
        "interruption_reason": draw(st.one_of(st.just(""), TEXT)),
        "regimen": draw(st.one_of(st.none(), TEXT)),
        "died": draw(st.booleans()),
        "detail": draw(TEXT),
    }


def build_edge_case(number, v):
    site = f.institution(v["site"], v["site"])
    p = f.patient(
        site=site,
        site_case_number=v["site_case_number"],
        birth_year=v["born"],
        birth_date=v["birth_date"],
        diagnosis_date=max(v["diagnosis"], date(v["born"], 12, 31)),
        blinatumomab_start_date=v["start"],
    )
    f.baseline(
        p,
        marrow_blasts_pct=v["marrow"],
        dexamethasone_mg_before=v["dex"],
        prephase_regimen="other",
        prephase_other=v["prephase_other"],
    )
    last = p.blinatumomab_start_date
    for n in range(1, v["cycles"] + 1):
        c = f.cycle(p, n, interruption_reason=v["interruption_reason"])
        a = f.assessment(
            p,
            c,
            anc_10e9_per_l=v["anc"],
            mrd_status="not_done" if v["mrd_level"] is None else "positive",
            mrd_level=v["mrd_level"],
        )
        last = a.assessment_date
    if v["regimen"] is not None:
        f.saved(
            SubsequentTherapy(
                patient=p,
                category="other",
                regimen=v["regimen"],
                start_date=last + timedelta(days=1),
            )
        )
        last += timedelta(days=1)
    end = last + timedelta(days=30)
    if v["died"]:
        f.followup(
            p,
            vital_status=FollowUp.DEAD,
            last_contact_date=end,
            death_date=end,
            death_cause="other",
            death_cause_detail=v["detail"],
        )
    else:
        f.followup(p, last_contact_date=end)


def generated_registry(n, seed, edges):
    """A small registry: the demo generator's cases (every CRF, shaped like the paper, valid by
    construction) at the demo's 16 sites, then the edge cases."""
    seeder = SeedDemo()
    empty_the_registry()
    sites = seeder.ensure_institutions()
    if n:
        seeder.save(demo.build_registry(n, seed, sites))
    for number, values in enumerate(edges):
        build_edge_case(number, values)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    edges=st.integers(0, 3).flatmap(
        lambda k: st.tuples(*[edge_case(i) for i in range(k)]) if k else st.just(())
    ),
)
def test_a_generated_registry_survives_export_and_import_byte_for_byte(
    tmp_path_factory, many_rows, n, seed, edges
):
    generated_registry(n, seed, edges)
    before, after, first, second = round_trip(tmp_path_factory.mktemp("trip"))
    assert after == before
    assert second == first
    assert Baseline.objects.count() == Patient.objects.count()
