"""The case book of one case (`/cases/<id>/casebook.pdf`): every CRF value labelled as on its
form, the CRF statuses, queries with their threads, verification, signatures and the case's
audit trail, under a header with study ID, site, print time and the content's SHA-256. Read back
from the PDF with pypdf and poppler's pdftotext."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from casebook import content
from monitoring import records
from monitoring.models import Query, Signature
from registry.models import Baseline, Cycle, Membership, Patient
from registry.views import KINDS
from tests import factories as f
from tests.registry.test_crf_forms import form_data

from .conftest import (
    complete_all,
    history_rows,
    pdf_pages,
    pdftotext,
    save_page_png,
    squash,
    url,
)

pytestmark = pytest.mark.django_db

KOREAN_QUESTION = "골수 검사 결과지를 확인해 주세요"
NO_FONT_HAS = "\U00013000"  # an Egyptian hieroglyph: neither DejaVu nor Nanum has it
KOREAN_ANSWER = f"확인했습니다 ✓ {NO_FONT_HAS}"


def expected_value(record, name) -> str:
    """A stored value as the form shows it, written out here independently of the app."""
    field = type(record)._meta.get_field(name)
    value = getattr(record, field.attname)
    if value is None or value == "":
        return "—"
    if field.choices:
        return str(getattr(record, f"get_{name}_display")())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field.is_relation:
        related = getattr(record, name)
        return f"cycle {related.number}" if isinstance(related, Cycle) else str(related)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def form_rows(record):
    """(label as on the form, expected value) of every field of the record's form."""
    form_class = next(k.form for k in KINDS.values() if k.form._meta.model is type(record))
    return [
        (str(form_class.base_fields[name].label), expected_value(record, name))
        for name in form_class._meta.fields
    ]


@pytest.fixture
def demo_case(settings):
    """The KR01 demo case with the most records, after an investigator's change with a reason,
    a monitor's query (in Korean) answered and closed, and a source data verification."""
    settings.DEBUG = True  # seed_demo refuses to replace data in production
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    patient = max(
        Patient.objects.filter(institution__code="KR01"),
        key=lambda p: p.cycles.count() + p.assessments.count() + p.adverse_events.count(),
    )
    investigator = get_user_model().objects.get(username="investigator")
    monitor = get_user_model().objects.get(username="monitor")
    inv, mon = Client(), Client()
    inv.force_login(investigator)
    mon.force_login(monitor)
    assert inv.post(url("registry:crf_complete", patient.pk, "baseline")).status_code == 302
    baseline = Baseline.objects.get(patient=patient)
    data = form_data(baseline, ecog=0 if baseline.ecog else 1)
    data["change_reason"] = "ECOG re-read from the clinic letter"
    saved = inv.post(url("registry:single_record", patient.pk, "baseline"), data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    new = url("monitoring:query_new", patient.pk) + f"?record=baseline:{baseline.pk}"
    assert (
        mon.post(new, {"field_name": "marrow_blasts_pct", "message": KOREAN_QUESTION}).status_code
        == 302
    )
    query = Query.objects.get(patient=patient)
    answer = url("monitoring:query_answer", query.pk)
    assert inv.post(answer, {"message": KOREAN_ANSWER}).status_code == 302
    assert mon.post(url("monitoring:query_close", query.pk), {"message": "OK"}).status_code == 302
    assert mon.post(url("monitoring:crf_verify", patient.pk, "baseline")).status_code == 302
    return patient, inv


def test_the_case_book_of_a_demo_case_holds_every_crf_value_and_audit_row_of_its_case_page(
    demo_case, tmp_path
):
    patient, inv = demo_case
    page = inv.get(url("registry:case", patient.pk)).content.decode()
    assert url("casebook:case_pdf", patient.pk) in page  # linked from the case page
    response = inv.get(url("casebook:case_pdf", patient.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pages = pdf_pages(response.content)
    text = squash("\n".join(pages))

    # every value of every CRF record, labelled as on its form
    checked = 0
    for _crf, crf_records in records.records_of(patient):
        for record in crf_records:
            for label, value in form_rows(record):
                assert squash(label + value) in text, (type(record).__name__, label, value)
                checked += 1
    assert checked > 60
    # derived values beside them
    for assessment in patient.assessments.all():
        assert squash(f"Response (derived){assessment.get_response_display()}") in text

    # every row of the case page's change history, whole and in the same (reversed) order
    rows = history_rows(page)
    assert len(rows) == len(content.audit_of(patient)) > 10
    position = 0
    for row in reversed(rows):  # the book lists the audit trail oldest first
        found = text.find(squash("".join(row)), position)
        assert found >= 0, row
        position = found
    assert squash("ECOG re-read from the clinic letter") in text
    assert any("investigator" in row and "ECOG performance status" in row for row in rows)

    # the query's thread in Korean; a character no font has is kept as its code point
    assert squash(KOREAN_QUESTION) in text
    assert squash("확인했습니다 ✓ [U+13000]") in text
    # the verification
    assert squash("Source data verified") in text and "bymonitor" in text
    # poppler reads the same words
    poppler = squash(pdftotext(response.content, tmp_path))
    assert squash(KOREAN_QUESTION) in poppler and patient.study_id in poppler

    png = save_page_png(response.content, tmp_path, f"casebook-{patient.study_id}-page1")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_page_png(response.content, tmp_path, f"casebook-{patient.study_id}-last", len(pages))


def test_every_page_has_the_study_id_site_print_time_and_content_sha256(client, case, investigator):
    client.force_login(investigator)
    response = client.get(url("casebook:case_pdf", case.pk))
    pages = pdf_pages(response.content)
    digest = content.build(case).sha256
    assert response["X-Content-SHA256"] == digest
    for number, page in enumerate(pages, start=1):
        assert case.study_id in page
        assert "KR01" in page
        assert "printed 20" in page
        assert f"Content SHA-256: {digest}" in page
        assert f"Page {number} of {len(pages)}" in page


def test_the_content_hash_stays_for_a_reprint_and_changes_with_a_value(client, case, investigator):
    client.force_login(investigator)
    first = client.get(url("casebook:case_pdf", case.pk))["X-Content-SHA256"]
    again = client.get(url("casebook:case_pdf", case.pk))["X-Content-SHA256"]
    assert first == again
    cycle = case.cycles.get()
    cycle.interruption_days = 3
    cycle.interruption_reason = "CRS"
    cycle.save()
    changed = client.get(url("casebook:case_pdf", case.pk))
    assert changed["X-Content-SHA256"] != first
    assert "3" in squash("".join(pdf_pages(changed.content)))


def test_a_signed_case_book_shows_the_signature_and_a_voided_one_why(client, case, investigator):
    from monitoring import services

    complete_all(case, investigator)
    services.sign_case(case, investigator, "pw-for-tests-1")
    client.force_login(investigator)
    text = squash("".join(pdf_pages(client.get(url("casebook:case_pdf", case.pk)).content)))
    assert squash("I attest that the data in this case are accurate and complete") in text
    assert squash("signed by inv") in text
    f.adverse_event(case, ctcae_term="Headache", grade=1, serious=False, action_taken="none")
    text = squash("".join(pdf_pages(client.get(url("casebook:case_pdf", case.pk)).content)))
    assert squash("AE Headache") in text and squash("not signed") in text
    assert squash(Signature.objects.get().void_reason) in text  # why it was voided


@pytest.mark.parametrize(
    "who, expected",
    [
        ("investigator", 200),
        ("monitor", 200),
        ("monitor2", 404),  # a monitor of another site
        ("superuser", 200),
        ("statistician", 404),
        ("anonymous", 302),
    ],
)
def test_the_case_book_is_for_whoever_may_read_the_case(
    client, case, investigator, monitor, monitor2, superuser, who, expected
):
    users = {"investigator": investigator, "monitor": monitor, "monitor2": monitor2}
    users["superuser"] = superuser
    users["statistician"] = f.user("stat", role=Membership.STATISTICIAN)
    if who != "anonymous":
        client.force_login(users[who])
    response = client.get(url("casebook:case_pdf", case.pk))
    assert response.status_code == expected
    if expected == 302:
        assert "/accounts/login/" in response["Location"]


def test_without_any_installed_font_the_book_is_still_drawn_with_code_points(
    client, case, investigator, monitor, settings, tmp_path
):
    from casebook.fonts import fonts
    from monitoring import services

    services.open_query(case, "baseline", f"{KOREAN_QUESTION} ≥ 5%", monitor)
    settings.CASEBOOK_FONT_DIRS = [str(tmp_path / "no-fonts-here")]
    fonts.cache_clear()
    try:
        client.force_login(investigator)
        response = client.get(url("casebook:case_pdf", case.pk))
    finally:
        fonts.cache_clear()
    assert response.status_code == 200
    text = squash("".join(pdf_pages(response.content)))
    # Helvetica sets Latin-1; the rest is kept as code points
    assert squash("[U+ACE8][U+C218]") in text and "[U+2265]5%" in text
    assert case.study_id in text
