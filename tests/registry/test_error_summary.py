"""Every form page opens a failed save with an error summary at the top: role=alert, focusable
(tabindex=-1, static/js/error_summary.js focuses it), each field's problem a link to the field.
The summary is one include (templates/_error_summary.html) used by every form page."""

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from monitoring import records
from registry.models import Membership
from tests import factories as f
from tests.monitoring.conftest import complete_all

pytestmark = pytest.mark.django_db


class Page(HTMLParser):
    """The ids of a page and its error summary: attributes, entries (text, link target)."""

    def __init__(self, html):
        super().__init__()
        self.ids = set()
        self.summary = None
        self.entries = []
        self._depth = 0  # >0 while inside the summary
        self._entry = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if attrs.get("id") == "error-summary":
            self.summary, self._depth = attrs, 0
        if self.summary is not None and self._depth >= 0:
            self._depth += 1
            if tag == "li":
                self._entry = ["", None]
            if tag == "a" and self._entry is not None:
                self._entry[1] = attrs.get("href")

    def handle_endtag(self, tag):
        if self.summary is not None and self._depth > 0:
            self._depth -= 1
            if tag == "li":
                self.entries.append((" ".join(self._entry[0].split()), self._entry[1]))
                self._entry = None
            if self._depth == 0:
                self._depth = -1  # summary closed

    def handle_data(self, data):
        if self._entry is not None:
            self._entry[0] += data


def summary_of(response):
    page = Page(response.content.decode())
    assert page.summary is not None, "no error summary on the page"
    return page


def assert_summary(response, expected_entries):
    page = summary_of(response)
    assert page.summary["role"] == "alert"
    assert page.summary["tabindex"] == "-1"
    assert "data-error-summary" in page.summary
    assert b"js/error_summary.js" in response.content
    assert page.entries == expected_entries
    for _text, href in page.entries:
        if href:  # every link leads to a field of the page
            assert href.startswith("#") and href[1:] in page.ids, href
    return page


@pytest.fixture
def investigator(client):
    client.force_login(f.user("inv"))


@pytest.fixture
def case():
    p = f.patient()
    f.baseline(p)
    return p


def test_a_crf_save_that_fails_lists_each_field_with_a_link(client, investigator, case):
    c = f.cycle(case)
    response = client.post(
        reverse("registry:record_new", args=[case.pk, "assessments"]),
        {
            "cycle": c.pk,
            "marrow_blasts_pct": "150",
            "emd_status": "none",
            "mrd_status": "x",
            "version": "",
        },
    )
    assert response.status_code == 200
    assert_summary(
        response,
        [
            ("Assessment date: This field is required.", "#id_assessment_date"),
            (
                "Bone marrow blasts (%): Ensure this value is less than or equal to 100.",
                "#id_marrow_blasts_pct",
            ),
            (
                "MRD: Select a valid choice. x is not one of the available choices.",
                "#id_mrd_status",
            ),
        ],
    )


def test_the_registration_refused_for_eligibility_links_the_failing_criterion(client, investigator):
    data = {
        "institution": f.institution().pk,
        "relapsed_refractory": "on",
        "bcp_all": "on",
        "ph_negative": "on",
        "birth_year": "1972",
        "blinatumomab_start_date": "2017-03-06",
        "sex": "female",
        "diagnosis_date": "2015-11-02",
    }  # not CD19-positive
    response = client.post(reverse("registry:register"), data)
    page = assert_summary(response, summary_of(response).entries)
    assert page.entries and all(href == "#id_cd19_positive" for _t, href in page.entries)
    assert "Not registered" in response.content.decode()


def test_a_removal_without_a_reason_links_the_reason(client, investigator, case):
    c = f.cycle(case)
    url = reverse("registry:record_remove", args=[case.pk, "cycles", c.pk])
    response = client.post(url, {"reason": "", "version": c.version})
    assert_summary(response, [("Reason for removal: This field is required.", "#id_reason")])


def test_a_non_field_error_is_shown_once_in_the_summary(client, investigator, case):
    """Removing a cycle an assessment refers to fails as a whole: the summary says so, and
    crispy's own block of non-field errors is not rendered as well."""
    c = f.cycle(case)
    f.assessment(case, c)
    url = reverse("registry:record_remove", args=[case.pk, "cycles", c.pk])
    response = client.post(url, {"reason": "entered twice", "version": c.version})
    page = assert_summary(response, summary_of(response).entries)
    assert len(page.entries) == 1
    text, href = page.entries[0]
    assert text.startswith("Not removed: these records refer to it:") and href is None
    assert response.content.decode().count("these records refer to it") == 1


def test_a_page_without_errors_has_no_summary(client, investigator, case):
    for url in (
        reverse("registry:record_new", args=[case.pk, "assessments"]),
        reverse("registry:register"),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert Page(response.content.decode()).summary is None
        assert b"js/error_summary.js" not in response.content


@pytest.fixture
def monitor(client):
    user = get_user_model().objects.create_user("mon", password="pw-for-tests-1", is_staff=True)
    Membership.objects.create(user=user, institution=f.institution(), role=Membership.MONITOR)
    client.force_login(user)
    return user


def test_a_query_without_a_question_links_the_question(client, monitor, case):
    url = reverse("monitoring:query_new", args=[case.pk])
    token = records.record_token(case.baseline)
    response = client.post(f"{url}?record={token}", {"field_name": "ecog", "message": ""})
    assert_summary(response, [("Question: This field is required.", "#id_message")])


def test_a_signature_with_a_wrong_password_is_summarised(client, case):
    user = f.user("pi")
    Membership.objects.filter(user=user).update(is_principal_investigator=True)
    c = f.cycle(case)
    f.assessment(case, c)
    f.adverse_event(case, c)
    f.followup(case)
    complete_all(case, user)
    client.force_login(user)
    response = client.post(reverse("monitoring:sign", args=[case.pk]), {"password": "guess"})
    assert_summary(response, [("The password is not correct: not signed.", None)])


def test_an_import_for_a_site_not_ones_own_links_the_site_field(client, investigator):
    other = f.institution("KR02", "Another site")
    response = client.post(reverse("exchange:import"), {"institution": other.pk})
    assert_summary(
        response,
        [
            ("Template files: This field is required.", "#id_files"),
            (
                "Site: Select a valid choice. That choice is not one of the available choices.",
                "#id_institution",
            ),
        ],
    )


def test_a_refused_import_focuses_its_list_of_problems(client, investigator):
    upload = io.BytesIO(b"not,a,template\n1,2,3\n")
    upload.name = "patients.csv"
    response = client.post(reverse("exchange:import"), {"files": [upload]})
    assert response.status_code == 400
    html = response.content.decode()
    box = re.search(r'<div[^>]*id="import-result"[^>]*>', html).group(0)
    assert 'role="alert"' in box and 'tabindex="-1"' in box and "data-error-summary" in box
    assert "js/error_summary.js" in html


def test_an_analysis_run_with_a_bad_parameter_links_it(client):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    data = {
        "test": "fisher",
        "age_years": "5",
        "months_from_diagnosis": "12",
        "marrow_blasts_pct": "50",
        "dexamethasone_mg": "80",
    }
    response = client.post(reverse("analysis:start_run"), data)
    assert response.status_code == 400
    assert_summary(
        response,
        [("Age cut (years): Ensure this value is greater than or equal to 19.", "#id_age_years")],
    )


def test_every_template_with_a_form_includes_the_error_summary():
    """A page that renders a crispy form (or the CRFs' cached crispy HTML) has the summary."""
    root = Path(settings.BASE_DIR) / "templates"
    renders_form = re.compile(r"{%\s*crispy\s|\|crispy\b|{{\s*form_html\s*}}")
    pages = [p for p in root.rglob("*.html") if renders_form.search(p.read_text())]
    assert len(pages) >= 7
    missing = [
        str(p.relative_to(root))
        for p in pages
        if '{% include "_error_summary.html" with form=form' not in p.read_text()
    ]
    assert missing == []
    # and the browser's own validation does not stop the POST: the server's messages and the
    # summary are the ones the user gets, the same on every page
    assert [str(p.relative_to(root)) for p in pages if "novalidate" not in p.read_text()] == []
