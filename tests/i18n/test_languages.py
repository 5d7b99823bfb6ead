"""Korean or English, chosen per user: the browser's Accept-Language by default, the navigation's
switcher kept in the profile, e-mail in the recipient's language, ISO dates in both."""

import re
from datetime import date

import pytest
from django import forms
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import translation

from monitoring import services
from monitoring.models import QueryEvent
from notifications import mail
from notifications.models import NotificationPreference
from registry.models import CrfStatus, Membership
from tests import factories as f

from .clients import KO

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.user
BURKITT_EN = "Burkitt leukaemia/lymphoma is excluded from the study."
BURKITT_KO = "버킷 백혈병/림프종은 연구에서 제외됩니다."


@pytest.fixture
def investigator():
    return f.user("inv")


def logged_in(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def nav(page) -> dict[str, str]:
    """The navigation bar's links (registry.context_processors): key -> label as shown."""
    html = page.content.decode() if hasattr(page, "content") else page
    return dict(re.findall(r'data-nav="(\w+)"[^>]*>([^<]*)</a>', html))


def saved_language(user) -> str:
    return NotificationPreference.objects.get(user=user).language


def registration(**changes) -> dict:
    data = {
        "institution": f.institution().pk,
        "version": "",
        "sex": "female",
        "birth_year": "1972",
        "diagnosis_date": "2015-11-02",
        "blinatumomab_start_date": "2017-03-06",
        "relapsed_refractory": "on",
        "bcp_all": "on",
        "ph_negative": "on",
        "cd19_positive": "on",
        "burkitt": "on",  # ineligible: registry.rules.eligibility_failures
    }
    data.update(changes)
    return data


def test_without_accept_language_or_a_saved_choice_the_pages_are_english(investigator):
    page = logged_in(investigator).get(reverse("registry:case_list"))
    assert page["Content-Language"] == "en"
    assert nav(page) == {
        "cases": "Cases",
        "register": "Register a patient",
        "exchange": "Data exchange",
    }


def test_a_browser_asking_for_korean_gets_the_navigation_and_badges_in_korean(investigator):
    f.patient()
    page = logged_in(investigator, **KO).get(reverse("registry:case_list"))
    html = page.content.decode()
    assert page["Content-Language"] == "ko"
    assert nav(page) == {"cases": "증례", "register": "환자 등록", "exchange": "자료 교환"}
    # a CRF status badge (CrfStatus.STATUS_CHOICES), titled with the CRF's name
    assert 'data-status="not_started" title="등록 및 기저치">시작 안 함</span>' in html


def test_a_rule_of_registry_rules_is_refused_in_the_browsers_language(investigator):
    url = reverse("registry:register")
    korean = logged_in(investigator, **KO).post(url, registration()).content.decode()
    english = logged_in(investigator).post(url, registration()).content.decode()
    assert f"부적격: {BURKITT_KO}" in korean and BURKITT_EN not in korean
    assert f"Not eligible: {BURKITT_EN}" in english


def test_the_switcher_saves_the_choice_in_the_profile_and_sets_the_cookie(investigator):
    client = logged_in(investigator, **KO)
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert response.cookies["django_language"].value == "en"
    assert saved_language(investigator) == "en"
    # the saved choice wins over the browser's Korean, on every page
    assert nav(client.get(reverse("registry:case_list")))["register"] == "Register a patient"
    client.post(reverse("set_language"), {"language": "ko", "next": "/"})
    assert saved_language(investigator) == "ko"
    assert nav(client.get(reverse("registry:case_list")))["register"] == "환자 등록"


def test_the_saved_language_comes_back_at_the_next_log_in(investigator):
    NotificationPreference.objects.create(user=investigator, language="ko")
    client = Client()  # no Accept-Language: English without the profile
    response = client.post(reverse("login"), {"username": "inv", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert nav(response)["register"] == "환자 등록"
    client.post(reverse("logout"))
    assert client.get(reverse("login"))["Content-Language"] == "en"  # the session is gone


def test_the_profile_page_edits_the_language(investigator):
    client = logged_in(investigator)
    data = {
        "mail-email": "",
        "pref-query_opened": "on",
        "pref-daily_digest": "on",
        "lang-language": "ko",
    }
    assert client.post(reverse("notifications:profile"), data).status_code == 302
    assert saved_language(investigator) == "ko"
    assert nav(client.get(reverse("registry:case_list")))["register"] == "환자 등록"
    data["lang-language"] = ""  # back to the browser's language
    client.post(reverse("notifications:profile"), data)
    assert saved_language(investigator) == ""
    assert nav(client.get(reverse("registry:case_list")))["register"] == "Register a patient"


def test_the_switcher_refuses_an_unknown_language_and_an_outside_next(investigator):
    client = logged_in(investigator)
    url = reverse("set_language")
    assert client.post(url, {"language": "fr", "next": "/"}).status_code == 400
    response = client.post(url, {"language": "ko", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get(url).status_code == 405


def test_a_visitor_not_logged_in_switches_with_the_cookie_alone():
    client = Client()
    response = client.post(reverse("set_language"), {"language": "ko", "next": "/accounts/login/"})
    assert response.status_code == 302 and response.cookies["django_language"].value == "ko"
    assert NotificationPreference.objects.count() == 0
    assert client.get(reverse("login"))["Content-Language"] == "ko"


@pytest.mark.parametrize("language", ["en", "ko"])
def test_dates_are_iso_in_both_languages(language):
    day = date(2017, 3, 6)
    with translation.override(language):
        shown = Template("{{ day }}|{{ day|date }}").render(Context({"day": day}))
        field = forms.DateField()
        assert field.clean("2017-03-06") == day
        assert forms.DateInput().format_value(day) == "2017-03-06"
    assert shown == "2017-03-06|2017-03-06"


@pytest.mark.parametrize("headers", [{}, KO])
def test_a_crf_date_box_shows_and_takes_iso_whatever_the_browsers_locale(investigator, headers):
    # The browser's own date picker would show mm/dd/yyyy or "2017. 03. 06." by its locale.
    patient = f.patient()  # KR01, the investigator's site
    f.baseline(patient)
    page = logged_in(investigator, **headers).get(
        reverse("registry:record_new", args=[patient.pk, "assessments"])
    )
    box = re.search(r'<input[^>]*name="assessment_date"[^>]*>', page.content.decode()).group(0)
    assert 'type="text"' in box
    assert 'placeholder="YYYY-MM-DD"' in box


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "Enter the date as YYYY-MM-DD, e.g. 2017-03-06."),
        (KO, "날짜를 YYYY-MM-DD 형식으로 입력하세요 (예: 2017-03-06)."),
    ],
)
def test_a_date_not_written_as_iso_is_refused_saying_the_format(investigator, headers, message):
    patient = f.patient()
    f.baseline(patient)
    page = logged_in(investigator, **headers).post(
        reverse("registry:record_new", args=[patient.pk, "assessments"]),
        {"assessment_date": "06/01/2017", "version": ""},
    )
    assert page.status_code == 200
    assert page.context["form"].errors["assessment_date"] == [message]


def test_the_api_answers_in_english_whatever_the_browser_asks(investigator):
    client = logged_in(investigator, **KO)
    response = client.post("/api/v1/patients/", {}, content_type="application/json")
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_a_query_email_is_written_in_its_recipients_saved_language(investigator):
    patient = f.patient()
    f.baseline(patient)
    investigator.email = "inv@site01.example.org"
    investigator.save()
    NotificationPreference.objects.create(user=investigator, language="ko")
    english = f.user("inv2")
    english.email = "inv2@site01.example.org"
    english.save()
    monitor = f.user("mon", role=Membership.MONITOR)
    with translation.override("en"):  # the monitor's page is in English
        query = services.open_query(patient, CrfStatus.BASELINE, "Check the ECOG.", monitor)
    event = QueryEvent.objects.get(query=query, action=QueryEvent.OPENED)
    messages = {m.to[0]: m for m in mail.messages_for_events([event.pk])}
    korean, plain = messages["inv@site01.example.org"], messages["inv2@site01.example.org"]
    assert korean.subject == (
        f"[블리나투모맙 레지스트리] {patient.study_id}에 질의 #{query.pk}이(가) 열렸습니다"
    )
    assert "mon이(가) 증례" in korean.body and "등록 및 기저치" in korean.body
    assert (
        plain.subject == f"[Blinatumomab registry] Query #{query.pk} opened on {patient.study_id}"
    )


def test_ctcae_terms_and_response_codes_stay_as_standardised_in_korean(investigator):
    from registry import rules

    with translation.override("ko"):
        message = rules.grade_error("Febrile neutropenia", (3, 4, 5), 1)
        labels = {code: str(label) for code, label in rules.RESPONSE_CHOICES}
    assert message.startswith("CTCAE v4.03은 Febrile neutropenia을(를) 3, 4, 5등급")
    assert labels["CR"] == "완전관해 (CR)" and labels["CRi"].endswith("(CRi)")
