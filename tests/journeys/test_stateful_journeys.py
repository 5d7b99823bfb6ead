"""The registry used the way its people use it, in random order, through the real pages.

A Hypothesis state machine (`RegistryJourneys`) plays the demo registry's users on the demo data:
investigators register patients, fill in, change (again and again, with and without a reason) and
remove every kind of CRF record, mark CRFs complete, answer queries, import rows and sign; the
monitor opens, closes and re-opens queries, verifies CRFs, runs the edit checks and locks and
unlocks cases and sites; the statistician starts an analysis; outsiders try what they may not.
Every step reads the rendered page, fills in its form (values drawn by Hypothesis, mistyped ones
included) and submits what a browser would (CSRF enforced, two-factor log-in for the monitor).

After every step, for the case(s) it touched, `what_everyone_sees_agrees_with_what_was_done`:
- no page of the case answers a 5xx (the case page as its investigator and the monitor see it,
  the page of every record the step saved, and three more of the case's pages in turn), nor the
  case list, /monitoring/ and the exports (dataset CSV, audit-trail CSV, API list, ODM: one per
  step in turn); JOURNEY_ALL_PAGES=1 visits every page and export after every step;
- the history (case page and each record's page) holds exactly one entry per saved field change,
  with who, old value, new value and reason, one per record created or removed, and one per case
  lock or unlock;
- every CRF badge and the case's state (case page, case list, monitoring site page) and the site's
  counts on /monitoring/ equal the monitoring state the users' actions produced, and the facts
  stored beside the CRF statuses say the same;
- every stored response equals registry.rules.derive_response of its stored values.
And on every step: a refused submission shows a field error and saved nothing; a saved one changed
only the record it was about and obeys the model's rules; what is offered (Answer, Close, Mark
verified, Lock, Sign, ...) is what the monitoring state allows.

CI runs JOURNEY_STEPS (default 300) steps in journeys of STEPS_PER_JOURNEY; set JOURNEY_STEPS higher
for a longer walk. The run is derandomized: the same steps on every run. Each journey starts from
the same demo registry (its writes are rolled back). JOURNEY_SHRINK=1 shrinks a failure to the
fewest steps (slow: each replay walks the pages again).
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from collections import Counter
from datetime import date, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from analysis.models import AnalysisRun
from monitoring.models import Finding, Query, Signature
from registry.models import CrfStatus, Patient

from . import model as m
from . import values
from .browser import PASSWORD, REQUESTS, TIMINGS, Page, Person

STEPS_PER_JOURNEY = 30  # steps of the users (the two set-up steps come first)
JOURNEY_STEPS = int(os.environ.get("JOURNEY_STEPS", "300"))
SHRINK = os.environ.get("JOURNEY_SHRINK") == "1"
ALL_PAGES = os.environ.get("JOURNEY_ALL_PAGES") == "1"
PAGES_PER_STEP = 3  # pages of a touched case visited per step, in turn
MY_SITES = ["KR01", "KR02", "KR03"]  # the investigators' sites (the monitor has all 16)
INVESTIGATOR_OF_SITE = {"KR01": "investigator", "KR02": "investigator2", "KR03": "investigator2"}


class Tally:
    """What the journeys did, over all of them: the run must have done enough of each."""

    def __init__(self):
        self.steps = 0
        self.journeys = 0
        self.saved = Counter()  # record kind -> saves that changed data
        self.refused = Counter()  # record kind -> submissions refused with an error
        self.actions = Counter()  # other actions that took effect


TALLY = Tally()
# What a run of JOURNEY_STEPS steps must at least have done, or the walk tested too little (the
# run is derandomized: the same steps every time; the full tally is printed).
AT_LEAST = {"saves": 20, "kinds saved": 6, "refusals": 10}
DONE_IN_EVERY_RUN = [
    "CRF marked complete",
    "query opened",
    "query answered",
    "case locked",
    "analysis run",
]


def case_url(case) -> str:
    return f"/cases/{case}/"


class RegistryJourneys(RuleBasedStateMachine):
    cases = Bundle("cases")
    records = Bundle("records")

    def __init__(self):
        super().__init__()
        # Each journey starts from the demo registry: its writes are undone in teardown() (the
        # views' own transactions nest inside as savepoints).
        self._journey = transaction.atomic()
        self._journey.__enter__()
        self.people: dict[str, Person] = {}
        self.monitoring = m.Monitoring.from_database()
        self.history = m.ExpectedHistory()
        self.before = m.snapshot()  # the case data as the last step left it
        self.touched: set[int] = set()  # cases the current step acted on
        self.step_changes: list[m.Change] = []  # what the current step saved
        self.page_turn: dict[int, int] = {}  # case -> which of its pages to visit next
        self.lock_entries: dict[int, Counter] = {}  # case -> (who, reason) of its lock entries
        self.known_cases: list[int] = []
        self.steps = 0
        self.analyses = 0
        self.wrong_passwords = 0
        self.imports = 0

    def teardown(self):
        TALLY.steps += max(self.steps - 1, 0)  # the first check follows the set-up, not a step
        TALLY.journeys += 1
        transaction.set_rollback(True)
        self._journey.__exit__(None, None, None)

    # --- the people ---------------------------------------------------------------------------

    def person(self, username) -> Person:
        """The user at their browser, logged in through the log-in page (and the TOTP page)."""
        if username not in self.people:
            who = Person(username)
            who.log_in()
            self.people[username] = who
        return self.people[username]

    def investigator_of(self, case) -> str:
        return INVESTIGATOR_OF_SITE[self.monitoring.site_of[case]]

    def case_page(self, username, case) -> Page:
        page = self.person(username).get(case_url(case))
        assert page.status == 200, f"{username}: GET {case_url(case)} -> {page.status}"
        return page

    def saved_changes(self) -> list[m.Change]:
        """What the last action saved (the case data now against the last snapshot)."""
        after = m.snapshot()
        changes = m.diff(self.before, after)
        self.before = after
        self.step_changes += changes
        return changes

    # --- set-up: the demo cases of the investigators' sites -----------------------------------

    @initialize(target=cases)
    def the_demo_cases(self):
        demo = list(
            Patient.objects.filter(institution__code__in=MY_SITES)
            .order_by("study_id")
            .values_list("pk", flat=True)
        )
        self.known_cases = demo
        return multiple(*demo)

    @initialize(target=records)
    def the_demo_records(self):
        refs = []
        for kind in m.REPEATING_KINDS:
            model = m.KINDS[kind].model
            for pk, case in model.objects.filter(patient__in=self.known_cases).values_list(
                "pk", "patient_id"
            ):
                refs.append(m.RecordRef(case, kind, pk))
        return multiple(*refs)

    # --- investigators: CRFs ------------------------------------------------------------------

    def fill_in_and_save(self, case, kind_slug, url, data, filled=None, record_pk=None):
        """Open a CRF page as the case's investigator, change some fields, save, and judge the
        answer. Returns the saved record's pk, or None when nothing was saved."""
        kind = m.KINDS[kind_slug]
        who = self.investigator_of(case)
        person = self.person(who)
        self.touched.add(case)
        page = person.get(url)
        if self.monitoring.is_locked(case):
            # A locked CRF is read only: its records show without Save; a new one is not offered
            # (its page leads back to the case, which says why).
            if page.status == 302:
                assert page.location == case_url(case), f"GET {url} -> {page.location}"
            else:
                assert page.status == 200, f"GET {url} of a locked case -> {page.status}"
                form = page.form(method="post", id="crf-form")
                assert form is None or not form.submittable, f"{url}: Save on a locked case"
            TALLY.actions["locked CRF read only"] += 1
            return None
        assert page.status == 200, f"GET {url} -> {page.status}"
        form = page.form(method="post", id="crf-form")
        assert form is not None, f"{url}: no CRF form"
        asks_reason = form.field("change_reason") is not None
        needs_reason = self.monitoring.needs_reason(case, kind.crf)
        assert asks_reason == needs_reason, (
            f"{url}: the form {'asks' if asks_reason else 'does not ask'} a reason for the change "
            f"but the CRF {'was' if needs_reason else 'was never'} complete / has "
            f"{len(self.monitoring.unresolved(case, kind.crf))} unresolved queries"
        )
        entered = dict(filled or {})
        dates = values.CaseDates.of(case)
        entered.update(data.draw(values.changes(form, dates, kind_slug), label="typed"))
        reason = None
        if asks_reason:
            reason = data.draw(values.REASONS, label="reason")
            entered["change_reason"] = reason
        response = person.submit(form, entered)
        return self.judge_crf_save(who, case, kind, record_pk, response, reason, url)

    def judge_crf_save(self, who, case, kind, record_pk, response, reason, url):
        changes = self.saved_changes()
        assert response.status < 500, f"POST {url} -> {response.status}"
        if not changes:
            assert response.status in (200, 302), f"POST {url} -> {response.status}"
            if response.status == 200:
                assert response.has_field_errors, f"POST {url} refused without saying why"
                TALLY.refused[kind.slug] += 1
            else:  # saved as it was (the values typed were those stored)
                TALLY.actions["saved unchanged"] += 1
            event(f"{kind.slug}: nothing saved")
            return None
        assert response.status == 302 and response.location == case_url(case), (
            f"POST {url} saved but answered {response.status} {response.location}"
        )
        assert not self.monitoring.is_locked(case), f"POST {url} changed a locked case"
        others = [
            c
            for c in changes
            if c.model is not kind.model or c.case != case or (record_pk and c.pk != record_pk)
        ]
        assert not others, f"POST {url} also changed {others}"
        if record_pk is None:
            assert [c.action for c in changes] == ["created"], changes
        stored_reason = (reason or "").strip()
        if self.monitoring.needs_reason(case, kind.crf):
            assert stored_reason and len(stored_reason) <= 100, (
                f"POST {url} saved a change to a complete/queried CRF with reason {reason!r}"
            )
        saved = kind.model.objects.get(pk=changes[0].pk)
        saved.full_clean(check_lock=False)  # what is saved obeys every rule of the model
        self.history.saved(changes, who, stored_reason)
        self.monitoring.data_changed(case, kind.crf)
        TALLY.saved[kind.slug] += 1
        event(f"{kind.slug}: saved")
        return changes[0].pk

    @rule(case=cases, kind=st.sampled_from(m.SINGLE_KINDS), data=st.data())
    def investigator_fills_in_a_one_record_crf(self, case, kind, data):
        """Registration, baseline, allogeneic SCT or follow-up: one record per case, one page."""
        model = m.KINDS[kind].model
        existing = case if kind == "registration" else None
        if existing is None:
            existing = model.objects.filter(patient_id=case).values_list("pk", flat=True).first()
        url = f"/cases/{case}/{kind}/"
        self.fill_in_and_save(case, kind, url, data, record_pk=existing)

    @rule(target=records, case=cases, kind=st.sampled_from(m.REPEATING_KINDS), data=st.data())
    def investigator_adds_a_record(self, case, kind, data):
        """A new cycle, response assessment, adverse event or subsequent therapy."""
        url = f"/cases/{case}/{kind}/new/"
        person = self.person(self.investigator_of(case))
        start = None
        if not self.monitoring.is_locked(case):
            page = person.get(url)
            form = page.form(method="post", id="crf-form") if page.status == 200 else None
            if form is not None:
                start = values.new_record(kind, form, values.CaseDates.of(case))
        pk = self.fill_in_and_save(case, kind, url, data, filled=start)
        return m.RecordRef(case, kind, pk) if pk else multiple()

    @rule(record=records, data=st.data())
    def investigator_changes_a_record(self, record, data):
        """Edit a cycle, assessment, adverse event or therapy: a few fields, again and again
        over a journey; once the CRF was complete (or is queried) the form asks why."""
        self.fill_in_and_save(record.case, record.kind, record.url, data, record_pk=record.pk)

    @rule(target=records, record=consumes(records), data=st.data())
    def investigator_removes_a_record(self, record, data):
        """Remove asks a reason, always; a cycle still referred to is not removed."""
        who = self.investigator_of(record.case)
        person = self.person(who)
        self.touched.add(record.case)
        url = record.url + "remove/"
        page = person.get(url)
        if self.monitoring.is_locked(record.case):
            assert page.status == 302 and page.location == case_url(record.case), page.status
            return record
        assert page.status == 200, f"GET {url} -> {page.status}"
        form = page.form(url)
        assert form is not None, f"{url}: no removal form"
        reason = data.draw(values.REASONS, label="reason")
        response = person.submit(form, {"reason": reason})
        changes = self.saved_changes()
        assert response.status < 500, f"POST {url} -> {response.status}"
        if not changes:
            if response.status == 200:
                assert response.has_field_errors, f"POST {url} refused without saying why"
            TALLY.refused["remove"] += 1
            return record
        assert [(c.model, c.pk, c.action) for c in changes] == [
            (m.KINDS[record.kind].model, record.pk, "removed")
        ], f"POST {url} changed {changes}"
        assert reason.strip() and len(reason.strip()) <= 100, f"removed with reason {reason!r}"
        self.history.saved(changes, who, reason.strip())
        self.monitoring.data_changed(record.case, m.KINDS[record.kind].crf)
        TALLY.saved["remove"] += 1
        return multiple()

    @rule(record=records, data=st.data())
    def two_tabs_save_the_same_record(self, record, data):
        """The same form open twice: the second save is refused and shows the first's change."""
        who = self.investigator_of(record.case)
        person = self.person(who)
        first = person.get(record.url)
        if first.status != 200 or self.monitoring.is_locked(record.case):  # read only
            return
        tab_a = first.form(method="post", id="crf-form")
        self.touched.add(record.case)
        saved = self.fill_in_and_save(
            record.case, record.kind, record.url, data, record_pk=record.pk
        )
        dates = values.CaseDates.of(record.case)
        entered = data.draw(values.changes(tab_a, dates, record.kind), label="tab A")
        if tab_a.field("change_reason") is not None:
            entered["change_reason"] = "Second tab"
        response = person.submit(tab_a, entered)
        if saved is None:  # tab B saved nothing: tab A is an ordinary save
            self.judge_crf_save(
                who, record.case, m.KINDS[record.kind], record.pk, response,
                entered.get("change_reason"), record.url,
            )  # fmt: skip
            return
        changes = self.saved_changes()
        assert response.status < 500, f"stale POST {record.url} -> {response.status}"
        assert not changes, f"a stale form overwrote the other tab's save: {changes}"
        assert any("changed this record" in t for t in response.alert_texts("danger")) or (
            response.status in (302, 409)
        ), f"stale POST {record.url}: no conflict message"
        TALLY.actions["stale save refused"] += 1

    @rule(record=records, version=st.sampled_from([None, "", "abc", "-1", "1.5", "99999"]))
    def the_browser_sends_a_tampered_version(self, record, version):
        """A form whose hidden version was lost or altered: refused, never a 5xx. Without a
        version or with one that is not a number the post is not a form of the page (400); an
        empty or unknown number is someone else's change (the conflict message)."""
        person = self.person(self.investigator_of(record.case))
        page = person.get(record.url)
        if page.status != 200 or self.monitoring.is_locked(record.case):
            return
        form = page.form(method="post", id="crf-form")
        entered = {"version": version}
        if form.field("change_reason") is not None:
            entered["change_reason"] = "Tampered version"
        response = person.submit(form, entered)
        changes = self.saved_changes()
        assert response.status < 500, f"POST {record.url} with version {version!r} -> 5xx"
        assert not changes, f"saved with version {version!r}: {changes}"
        if version is None or not version.isdigit() and version != "":
            assert response.status == 400, f"version {version!r} -> {response.status}"
        else:
            assert response.status == 200 and response.alert_texts("danger"), response.status
        TALLY.actions["tampered version refused"] += 1

    @rule(
        target=cases,
        who=st.sampled_from(["investigator", "investigator2"]),
        data=st.data(),
    )
    def investigator_registers_a_patient(self, who, data):
        """From the case list's "Register a patient": eligibility first, the study ID on save."""
        person = self.person(who)
        listing = person.get("/")
        links = listing.links_to(r"^/cases/register/$")
        assert links, f"{who}: the case list offers no 'Register a patient'"
        page = person.get(links[0].href)
        form = page.form("/cases/register/")
        sites = [v for v, _label, _s in form.field("institution").options if v]
        site = data.draw(st.sampled_from(sites), label="site")
        start = data.draw(st.dates(date(2016, 6, 1), date(2018, 1, 31)), label="start")
        entered = values.registration(site, start)
        for box in form.fields:  # the person confirms every eligibility criterion
            if box.kind == "checkbox" and box.name != "burkitt":
                entered[box.name] = "on"
        dates = values.CaseDates(start - timedelta(days=400), start, None, [], 1968)
        entered.update(data.draw(values.changes(form, dates, "register", most=2), label="typed"))
        response = person.submit(form, entered)
        changes = self.saved_changes()
        assert response.status < 500, f"POST /cases/register/ -> {response.status}"
        code = next(label for v, label, _s in form.field("institution").options if v == site)
        code = code.split()[0]
        if not changes:
            assert response.status == 200 and response.has_field_errors, response.status
            TALLY.refused["register"] += 1
            return multiple()
        assert code not in self.monitoring.locked_sites, f"registered at locked site {code}"
        assert [(c.model, c.action) for c in changes] == [(Patient, "created")], changes
        case = changes[0].pk
        assert response.status == 302 and response.location == case_url(case)
        patient = Patient.objects.get(pk=case)
        patient.full_clean(check_lock=False)
        assert not patient.eligibility_failures()
        self.monitoring.site_of[case] = code
        self.history.saved(changes, who, "")
        self.touched.add(case)
        TALLY.saved["register"] += 1
        return case

    @rule(case=cases, crf=st.sampled_from([*m.CRFS, "every CRF"]))
    def investigator_marks_crfs_complete(self, case, crf):
        """ "Mark complete" on one CRF card, or on every card offering it."""
        who = self.investigator_of(case)
        page = self.case_page(who, case)
        self.touched.add(case)
        mon = self.monitoring
        crfs = m.CRFS if crf == "every CRF" else [crf]
        for crf in crfs:
            form = page.form(f"/cases/{case}/crf/{crf}/complete/")
            if form is None:
                continue
            assert (case, crf) not in mon.complete, f"{crf} is complete yet offered again"
            assert not mon.is_locked(case), f"Mark complete offered on locked case {case}"
            response = self.person(who).submit(form)
            assert response.status == 302, response.status
            started = m.has_records(self.before, case, crf)
            stored = CrfStatus.objects.filter(patient_id=case, crf=crf).first()
            marked = stored is not None and stored.marked_complete_at is not None
            assert marked == (started or crf not in m.NEEDS_RECORD), (
                f"mark {crf} complete (records: {started}): marked={marked}"
            )
            if marked:
                mon.complete.add((case, crf))
                mon.ever_complete.add((case, crf))
                TALLY.actions["CRF marked complete"] += 1

    def go_to(self, case, flagged, data) -> int:
        """The case a person opens: mostly one the case list flags for what they are about to
        do (open queries, CRFs to verify, ...), when there is any; else the drawn one."""
        flagged = sorted(set(flagged) & set(self.monitoring.site_of))
        if not flagged:
            return case
        return data.draw(st.sampled_from([*flagged, case]), label="case")

    @rule(case=cases, data=st.data())
    def investigator_signs_the_case(self, case, data):
        """KR01's principal investigator signs a complete case by re-entering the password."""
        mon = self.monitoring
        ready = [c for c in mon.site_of if mon.case_complete(c) and c not in mon.signed]
        case = self.go_to(case, [c for c in ready if mon.site_of[c] == "KR01"], data)
        if self.monitoring.site_of[case] != "KR01":
            return
        page = self.case_page("investigator", case)
        links = page.links_to(rf"^/monitoring/cases/{case}/sign/$")
        ready = self.monitoring.case_complete(case) and case not in self.monitoring.signed
        assert bool(links) == ready, f"case {case}: 'Sign this case' offered={bool(links)}"
        if not links:
            return
        self.touched.add(case)
        person = self.person("investigator")
        form = person.get(links[0].href).form(links[0].href)
        wrong = self.wrong_passwords < 2 and data.draw(st.booleans(), label="mistyped password")
        response = person.submit(form, {"password": "not my password" if wrong else PASSWORD})
        self.wrong_passwords += wrong
        signed = Signature.objects.filter(patient_id=case, voided_at__isnull=True).exists()
        assert signed == (not wrong), f"signed={signed} with a {'wrong' if wrong else 'right'} pw"
        assert response.status == (200 if wrong else 302)
        if signed:
            self.monitoring.signed.add(case)
            TALLY.actions["case signed"] += 1

    @rule(target=cases, who=st.sampled_from(["investigator", "investigator2"]), data=st.data())
    def investigator_imports_rows(self, who, data):
        """The import page: a new case with every kind of record, and a row for a case already
        in the registry; a broken cell or a locked CRF refuses the whole upload."""
        person = self.person(who)
        page = person.get("/exchange/import/")
        assert page.status == 200, page.status
        form = page.form("/exchange/import/")
        site_options = [(v, label.split()[0]) for v, label, _s in form.field("institution").options
                        if v]  # fmt: skip
        site_value, site = data.draw(st.sampled_from(site_options), label="site")
        self.imports += 1
        rows = import_rows(f"IMP-{self.imports}", site_case_start=date(2017, 2, 1))
        existing = [c for c in self.known_cases if self.monitoring.site_of.get(c) == site]
        extra_case = data.draw(st.sampled_from([None, *existing]), label="also for case")
        if extra_case is not None:
            study_id = Patient.objects.get(pk=extra_case).study_id
            rows["subsequent_therapies"] = [
                {"study_id": study_id, "category": "other", "regimen": "Imported therapy",
                 "start_date": str(values.CaseDates.of(extra_case).start + timedelta(days=90))}
            ]  # fmt: skip
        broken = data.draw(st.sampled_from([None] * 4 + BREAKAGES), label="broken cell")
        if broken:
            file, column, value = broken
            rows[file][0][column] = value
        check_only = data.draw(st.sampled_from([None, None, "on"]), label="check only")
        uploads = [
            SimpleUploadedFile(f"{n}.csv", csv_bytes(r), "text/csv") for n, r in rows.items()
        ]
        response = person.submit(
            form, {"files": uploads, "institution": site_value, "check_only": check_only}
        )
        changes = self.saved_changes()
        assert response.status in (200, 400), f"POST /exchange/import/ -> {response.status}"
        locked = site in self.monitoring.locked_sites or (
            extra_case is not None and self.monitoring.is_locked(extra_case)
        )
        if locked or broken:
            assert response.status == 400, f"import (locked={locked}, broken={broken}) saved"
        if response.status == 400 or check_only:
            assert not changes, f"a refused or check-only import saved {changes}"
            TALLY.refused["import"] += 1
            return multiple()
        assert changes and all(c.action == "created" for c in changes), changes
        for c in changes:
            self.history.saved([c], who, f"import {IMPORT_FILE[c.model]}")
        new_cases = sorted({c.case for c in changes if c.model is Patient})
        assert len(new_cases) == 1
        for case in new_cases:
            self.monitoring.site_of[case] = site
            self.known_cases.append(case)
        if extra_case is not None:
            self.monitoring.data_changed(extra_case, CrfStatus.TRANSPLANT)
            self.touched.add(extra_case)
        self.touched.update(new_cases)
        TALLY.saved["import"] += 1
        return multiple(*new_cases)

    # --- the monitor --------------------------------------------------------------------------

    @rule(case=cases, data=st.data())
    def monitor_opens_a_query(self, case, data):
        """ "Open a query": pick a record (or a whole CRF), then the field and the question."""
        monitor = self.person("monitor")
        page = self.case_page("monitor", case)
        links = page.links_to(rf"^/monitoring/cases/{case}/queries/new/$")
        assert links, f"case {case}: the monitor is offered no 'Open a query'"
        self.touched.add(case)
        pick = monitor.get(links[0].href)
        choices = pick.links_to(rf"^/monitoring/cases/{case}/queries/new/\?(record|crf)=")
        assert choices, "nothing to query on the pick page"
        chosen = data.draw(st.sampled_from(choices), label="record")
        page = monitor.get(chosen.href)
        assert page.status == 200, page.status
        form = page.form(f"/monitoring/cases/{case}/queries/new/")
        fields = [v for v, _label, _s in form.field("field_name").options]
        field = data.draw(st.sampled_from(fields), label="field")
        message = data.draw(values.MESSAGES, label="question")
        known = set(Query.objects.values_list("pk", flat=True))
        response = monitor.submit(form, {"field_name": field, "message": message})
        new = list(Query.objects.exclude(pk__in=known))
        allowed = message.strip() and not self.monitoring.is_locked(case)
        assert len(new) == (1 if allowed else 0), f"{len(new)} queries opened (allowed={allowed})"
        if not new:
            assert response.status == 200 and response.has_field_errors, response.status
            return
        assert response.status == 302 and response.location == case_url(case)
        self.monitoring.queries[new[0].pk] = m.QueryState(case, new[0].crf, new[0].status)
        TALLY.actions["query opened"] += 1

    @rule(case=cases, data=st.data())
    def the_query_thread_goes_on(self, case, data):
        """On a case with queries, whoever's turn it is: the site's investigator answers an
        unresolved query (a blank answer changes nothing), or the monitor closes one or re-opens
        a closed one (with a message; not on a locked case)."""
        case = self.go_to(case, {q.case for q in self.monitoring.queries.values()}, data)
        who = self.investigator_of(case)
        unresolved = set(self.monitoring.unresolved(case))
        answering = self.case_page(who, case).forms_to(r"^/monitoring/queries/\d+/answer/$")
        page = self.case_page("monitor", case)
        closing = page.forms_to(r"^/monitoring/queries/\d+/close/$")
        reopening = page.forms_to(r"^/monitoring/queries/\d+/reopen/$")
        for offered, what in ((answering, "Answer"), (closing, "Close")):
            shown = {int(f.action.split("/")[3]) for f in offered}
            assert shown == unresolved, f"case {case}: {what} on {shown}, unresolved {unresolved}"
        if not answering + closing + reopening:
            return
        self.touched.add(case)
        form = data.draw(st.sampled_from(answering + closing + reopening), label="query")
        query = int(form.action.split("/")[3])
        message = data.draw(values.MESSAGES, label="message")
        person = self.person(who if form in answering else "monitor")
        response = person.submit(form, {"message": message})
        assert response.status == 302, response.status
        before, status = self.monitoring.queries[query].status, Query.objects.get(pk=query).status
        if form in answering:
            assert status == (Query.ANSWERED if message.strip() else before), status
            TALLY.actions["query answered"] += status != before
        elif form in closing:
            assert status == Query.CLOSED, status
            TALLY.actions["query closed"] += 1
        else:
            reopened = message.strip() and not self.monitoring.is_locked(case)
            assert status == (Query.OPEN if reopened else Query.CLOSED), status
            TALLY.actions["query re-opened"] += bool(reopened)
        self.monitoring.queries[query].status = status

    @rule(case=cases, data=st.data())
    def monitor_verifies_a_crf(self, case, data):
        """Source data verification of a complete CRF, or withdrawing it."""
        mon = self.monitoring
        to_verify = {c for c, crf in mon.complete if not mon.is_locked(c)}
        case = self.go_to(case, to_verify, data)
        page = self.case_page("monitor", case)
        verify = page.forms_to(rf"^/monitoring/cases/{case}/crf/\w+/verify/$")
        unverify = page.forms_to(rf"^/monitoring/cases/{case}/crf/\w+/unverify/$")
        can_verify = {
            crf
            for crf in m.CRFS
            if (case, crf) in mon.complete and (case, crf) not in mon.verified
            and not mon.is_locked(case)
        }  # fmt: skip
        assert {f.action.split("/")[5] for f in verify} == can_verify, "Mark verified offers"
        if not verify + unverify:
            return
        self.touched.add(case)
        form = data.draw(st.sampled_from(verify + unverify), label="CRF")
        crf = form.action.split("/")[5]
        response = self.person("monitor").submit(form)
        assert response.status == 302, response.status
        verified = CrfStatus.objects.get(patient_id=case, crf=crf).verified_at is not None
        assert verified == (form in verify)
        (mon.verified.add if verified else mon.verified.discard)((case, crf))
        TALLY.actions["CRF verified" if verified else "verification withdrawn"] += 1

    @rule(case=cases, data=st.data())
    def monitor_locks_or_unlocks_the_case(self, case, data):
        """Lock a case with no open query (the button is disabled while one is), or unlock a
        locked one, which needs a reason."""
        case = self.go_to(case, self.monitoring.locked_cases, data)
        page = self.case_page("monitor", case)
        lock = page.form(f"/monitoring/cases/{case}/lock/")
        unlock = page.form(f"/monitoring/cases/{case}/unlock/")
        mon = self.monitoring
        site_locked = mon.site_of[case] in mon.locked_sites
        assert (lock is not None) == (not mon.is_locked(case)), "Lock case offered wrongly"
        assert (unlock is not None) == (case in mon.locked_cases and not site_locked), "Unlock"
        self.touched.add(case)
        if lock is not None:
            assert lock.submittable == (not mon.unresolved(case)), "Lock button state"
            if not lock.submittable:
                return
            reason = data.draw(values.MESSAGES, label="reason")
            response = self.person("monitor").submit(lock, {"reason": reason})
            assert response.status == 302
            locked = CrfStatus.objects.filter(patient_id=case, locked_at__isnull=False).count()
            assert locked == len(m.CRFS), f"{locked} CRFs locked"
            mon.locked_cases.add(case)
            self.lock_entries.setdefault(case, Counter())[("monitor", "case locked")] += 1
            TALLY.actions["case locked"] += 1
        elif unlock is not None:
            reason = data.draw(values.MESSAGES, label="reason")
            response = self.person("monitor").submit(unlock, {"reason": reason})
            assert response.status == 302
            still = CrfStatus.objects.filter(patient_id=case, locked_at__isnull=False).exists()
            assert still == (not reason.strip()), "unlock needs a reason, and only that"
            if not still:
                mon.locked_cases.discard(case)
                entry = ("monitor", f"case unlocked: {reason.strip()}"[:100])
                self.lock_entries.setdefault(case, Counter())[entry] += 1
                TALLY.actions["case unlocked"] += 1

    @rule(site=st.sampled_from(MY_SITES), data=st.data())
    def monitor_locks_or_unlocks_a_site(self, site, data):
        """Lock a whole site (refused while a query of it is open) or unlock it (needs a reason)."""
        monitor = self.person("monitor")
        page = monitor.get(f"/monitoring/sites/{site}/")
        assert page.status == 200, page.status
        lock = page.form(f"/monitoring/sites/{site}/lock/")
        unlock = page.form(f"/monitoring/sites/{site}/unlock/")
        mon = self.monitoring
        assert (unlock is not None) == (site in mon.locked_sites)
        # A whole site is locked rarely (the end of data entry): mostly the monitor only looks.
        if lock is not None and data.draw(st.integers(0, 5), label="lock the site") != 5:
            assert monitor.get("/monitoring/").status == 200
            return
        reason = data.draw(values.MESSAGES, label="reason")
        response = monitor.submit(lock or unlock, {"reason": reason})
        assert response.status == 302
        site_cases = [c for c, s in mon.site_of.items() if s == site]
        self.touched.update(c for c in site_cases if c in self.known_cases)
        locked = Patient.objects.get(pk=site_cases[0]).institution.locked_at is not None
        if lock is not None:
            queries = any(mon.unresolved(c) for c in site_cases)
            assert locked == (not queries), f"site lock with unresolved queries={queries}"
        else:
            assert locked == (not reason.strip()), "site unlock needs a reason"
        (mon.locked_sites.add if locked else mon.locked_sites.discard)(site)
        TALLY.actions[f"site {'locked' if locked else 'unlocked'}"] += 1

    @rule(site=st.sampled_from(MY_SITES), data=st.data())
    def monitor_runs_the_edit_checks(self, site, data):
        """Run the site's edit checks, then perhaps open a query from one finding."""
        monitor = self.person("monitor")
        page = monitor.get(f"/monitoring/sites/{site}/")
        response = monitor.submit(page.form(f"/monitoring/sites/{site}/checks/"))
        assert response.status == 302, response.status
        for q in Query.objects.filter(patient__institution__code=site):
            known = self.monitoring.queries.get(q.pk)
            if known and known.status != q.status:
                # Running the checks again closes the queries whose finding is gone.
                assert q.check_key and q.status == Query.CLOSED, (q.pk, known, q.status)
                known.status = q.status
        page = monitor.follow(response)
        forms = page.forms_to(r"^/monitoring/findings/\d+/query/$")
        if not forms or not data.draw(st.booleans(), label="open a query from a finding"):
            return
        form = data.draw(st.sampled_from(forms), label="finding")
        finding = Finding.objects.get(pk=int(form.action.split("/")[3]))
        known = set(Query.objects.values_list("pk", flat=True))
        response = monitor.submit(form)
        assert response.status == 302, response.status
        new = list(Query.objects.exclude(pk__in=known))
        locked = self.monitoring.is_locked(finding.patient_id)
        assert len(new) == (0 if locked else 1), f"{len(new)} queries from one finding"
        for q in new:
            self.monitoring.queries[q.pk] = m.QueryState(q.patient_id, q.crf, q.status)
            self.touched.add(q.patient_id)
        TALLY.actions["query from a finding"] += len(new)

    # --- the statistician -----------------------------------------------------------------------

    @precondition(lambda self: self.analyses == 0)
    @rule(data=st.data())
    def statistician_starts_an_analysis(self, data):
        """A run of the paper's analyses on the registry as the journeys have left it (a run
        takes seconds: at most one per journey, and mostly the statistician only looks)."""
        statistician = self.person("statistician")
        page = statistician.get("/analysis/")
        assert page.status == 200, page.status
        if not data.draw(st.integers(0, 7), label="start a run") == 0:
            return
        self.analyses += 1
        form = page.form("/analysis/runs/")
        age = data.draw(st.sampled_from([None, None, "65", "18", "abc"]), label="age cut")
        response = statistician.submit(form, {"age_years": age} if age else {})
        assert response.status in (302, 400), f"POST /analysis/runs/ -> {response.status}"
        if response.status == 400:
            assert response.has_field_errors
            return
        run = AnalysisRun.objects.order_by("-created_at").first()
        assert run.status == AnalysisRun.SUCCEEDED, f"the analysis failed: {run.error}"
        detail = statistician.follow(response)
        assert detail.status == 200, detail.status
        status = statistician.get(f"/analysis/runs/{run.pk}/status/")
        assert status.status == 200
        for link in detail.links_to(rf"^/analysis/runs/{run.pk}/files/[\w.]+\.csv$")[:4]:
            assert statistician.get(link.href).status == 200, link.href
        TALLY.actions["analysis run"] += 1

    # --- people who may not ---------------------------------------------------------------------

    @rule(case=cases, kind=st.sampled_from(m.SINGLE_KINDS))
    def outsiders_cannot_change_the_case(self, case, kind):
        """A monitor reads a CRF but its save is refused (403); a statistician and another site's
        investigator do not even see that the case exists (404)."""
        url = f"/cases/{case}/{kind}/"
        investigator = self.person(self.investigator_of(case))
        page = investigator.get(url)
        if page.status != 200:
            return
        data = page.form(method="post", id="crf-form").data()
        monitor = self.person("monitor")
        seen = monitor.get(url)
        assert seen.status in (200, 302), f"monitor GET {url} -> {seen.status}"
        data["csrfmiddlewaretoken"] = monitor.client.cookies["csrftoken"].value
        data["change_reason"] = "Monitor tries"
        response = monitor.post(url, data)
        assert response.status == 403, f"monitor POST {url} -> {response.status}"
        site = self.monitoring.site_of[case]
        stranger = "investigator2" if site == "KR01" else "investigator"
        for who in ("statistician", stranger):
            assert self.person(who).get(case_url(case)).status == 404, f"{who} reached {case}"
            assert self.person(who).get(url).status == 404, f"{who} reached {url}"
        assert not self.saved_changes(), "an outsider changed the case"
        TALLY.actions["outsiders refused"] += 1

    # --- after every step -----------------------------------------------------------------------

    @invariant()
    def what_everyone_sees_agrees_with_what_was_done(self):
        self.steps += 1
        self.step_cases = sorted(self.touched) or self.known_cases[:1]
        for case in self.step_cases:
            self.check_case(case)
        for change in self.step_changes:
            self.check_record_pages(change)
        self.check_overviews_and_exports()
        wrong = m.stored_response_mismatches()
        assert not wrong, "stored responses differ from registry.rules:\n" + "\n".join(wrong)
        self.touched, self.step_changes = set(), []

    def expected_statuses(self, case) -> dict:
        return {
            crf: self.monitoring.status(case, crf, m.has_records(self.before, case, crf))
            for crf in m.CRFS
        }

    def check_case(self, case):
        """The case as its investigator and the monitor see it: badges, history, its pages."""
        expected = self.expected_statuses(case)
        stored = {
            crf: m.status_from_stored_facts(case, crf, m.has_records(self.before, case, crf))
            for crf in m.CRFS
        }
        assert stored == expected, (
            f"case {case}: the stored monitoring facts say {stored}, the users' actions {expected}"
        )
        who = self.investigator_of(case)
        person = self.person(who)
        page = self.case_page(who, case)
        assert_badges(page, expected, f"{who}'s case page {case}")
        state = self.monitoring.case_state(case)
        assert page.case_state() == state, f"case page {case}: {page.case_state()}, not {state}"
        # The history: one entry per saved change, with who, old, new and reason.
        fields, created_removed, statuses = m.history_table(page.rows("history"), True)
        expected_fields = self.history.field_rows(case)
        assert fields == expected_fields, history_message(case, fields, expected_fields)
        mine = Counter({k: n for k, n in created_removed.items() if k[0] != "system"})
        assert mine == self.history.record_rows(case), (
            f"case {case}: records created/removed in the history {dict(mine)}, "
            f"saved {dict(self.history.record_rows(case))}"
        )
        if self.monitoring.is_locked(case):
            offers = [link.href for link in page.links_to(r"/(new|remove)/$")]
            offers += [f.action for f in page.forms_to(r"/complete/$")]
            assert not offers, f"locked case {case} offers {offers}"
        # A case lock or unlock is one entry, by the monitor, whatever the number of CRFs.
        locks = Counter(
            {k: n for k, n in statuses.items() if re.match(r"case (locked$|unlocked: )", k[1])}
        )
        assert locks == self.lock_entries.get(case, Counter()), (
            f"case {case}: lock entries in the history {dict(locks)}, locks and unlocks done "
            f"{dict(self.lock_entries.get(case, {}))}"
        )
        # The pages of the case its investigator reaches from it answer without a 5xx: a few per
        # step in turn (all of them with JOURNEY_ALL_PAGES=1); each record's page shows that
        # record's own history.
        links = sorted({link.href for link in page.links
                        if link.href.startswith((f"/cases/{case}/", f"/monitoring/cases/{case}/"))
                        and link.href != case_url(case)})  # fmt: skip
        if not ALL_PAGES and links:
            start = self.page_turn.get(case, 0) % len(links)
            self.page_turn[case] = start + PAGES_PER_STEP
            links = (links + links)[start : start + min(PAGES_PER_STEP, len(links))]
        for href in links:
            self.check_page(person, case, href)
        # The case list, and the monitor's view: the case page and the site's monitoring page
        # in turn (both with JOURNEY_ALL_PAGES=1).
        site = self.monitoring.site_of[case]
        study_id = Patient.objects.get(pk=case).study_id
        listing = person.get("/", site=site, q=study_id)
        assert listing.status == 200, listing.status
        assert_badges(listing, expected, f"{who}'s case list", row=study_id)
        shown = listing.case_state(row=study_id)
        assert shown == state, f"case list, {study_id}: {shown}, not {state}"
        if ALL_PAGES or self.steps % 2:
            mon_page = self.case_page("monitor", case)
            assert_badges(mon_page, expected, f"monitor's case page {case}")
        if ALL_PAGES or not self.steps % 2:
            site_page = self.person("monitor").get(f"/monitoring/sites/{site}/")
            assert site_page.status == 200, site_page.status
            assert_badges(site_page, expected, f"monitoring page of {site}", row=study_id)

    def check_page(self, person, case, href):
        page = person.get(href)
        assert page.status < 500, f"{person.username}: GET {href} -> {page.status}"
        ref = record_of_url(case, href)
        if ref is not None and page.status == 200:
            model, pk = ref
            got, _, _ = m.history_table(page.rows("history"), with_record=False)
            want = self.history.field_rows(case, model, pk)
            assert got == want, history_message(case, got, want, href)

    def check_record_pages(self, change):
        """The page of a record the step saved (and its removal page) answer and show its
        history; a removed record's page is a 404."""
        kind = m.KIND_OF_MODEL[change.model]
        if kind.model is Patient:
            href = f"/cases/{change.case}/registration/"
        elif kind.many:
            href = f"/cases/{change.case}/{kind.slug}/{change.pk}/"
        else:
            href = f"/cases/{change.case}/{kind.slug}/"
        person = self.person(self.investigator_of(change.case))
        if change.action == "removed":
            if kind.many:
                assert person.get(href).status == 404, f"removed record's {href} is not a 404"
            return
        self.check_page(person, change.case, href)
        if kind.many:
            remove = person.get(href + "remove/")
            assert remove.status < 500, f"GET {href}remove/ -> {remove.status}"

    def check_overviews_and_exports(self):
        """The overviews and exports read the whole registry: one per step in turn (all of them
        with JOURNEY_ALL_PAGES=1)."""
        # The monitor's progress page counts what the users did at the sites touched.
        progress = self.person("monitor").get("/monitoring/")
        assert progress.status == 200, progress.status
        for site in sorted({self.monitoring.site_of[c] for c in self.step_cases}):
            shown = progress.row(site)[1:9]
            want = self.monitoring.site_progress(site)
            assert shown == want, f"/monitoring/ row {site}: {shown}, the users' actions {want}"
        exports = [
            ("monitor", "/admin/monitoring/auditentry/export/"),
            ("statistician", "/analysis/dataset.csv"),
            ("investigator", "/api/v1/patients/"),
            ("investigator2", "/exchange/odm.xml"),
        ]
        if not ALL_PAGES:
            exports = [exports[self.steps % len(exports)]]
        for who, url in exports:
            page = self.person(who).get(url)
            assert page.status == 200, f"{who}: GET {url} -> {page.status}"


# --- helpers ----------------------------------------------------------------------------------


def assert_badges(page: Page, expected: dict, where: str, row=None):
    shown = {}
    for badge in page.badges:
        if row is not None and badge.get("row") != row:
            continue
        shown.setdefault(badge["data-crf"], set()).add(badge["data-status"])
    want = {crf: {status} for crf, status in expected.items()}
    assert shown == want, f"{where}: badges {shown}, monitoring state {expected}"


def record_of_url(case, href):
    """(model, pk) of a record's own page (/cases/<case>/<kind>/[<pk>/]), else None."""
    parts = href.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "cases":
        return None
    kind = m.KINDS.get(parts[2])
    if kind is None:
        return None
    if kind.many:
        if len(parts) == 4 and parts[3].isdigit():
            return kind.model, int(parts[3])
        return None
    if len(parts) != 3:
        return None
    if kind.model is Patient:
        return Patient, case
    pk = kind.model.objects.filter(patient_id=case).values_list("pk", flat=True).first()
    return (kind.model, pk) if pk else None


def history_message(case, got, want, where=None) -> str:
    missing = want - got
    extra = got - want
    return (
        f"case {case} history{f' on {where}' if where else ''}: missing {dict(missing)}; "
        f"not saved but shown {dict(extra)}"
    )


# --- the import's files ------------------------------------------------------------------------

IMPORT_FILE = {
    m.KINDS["registration"].model: "patients.csv",
    m.KINDS["baseline"].model: "patients.csv",
    m.KINDS["cycles"].model: "cycles.csv",
    m.KINDS["assessments"].model: "response_assessments.csv",
    m.KINDS["adverse-events"].model: "adverse_events.csv",
    m.KINDS["subsequent-therapies"].model: "subsequent_therapies.csv",
    m.KINDS["follow-up"].model: "follow_up.csv",
}
# (file, column, value) a site might get wrong in a spreadsheet
BREAKAGES = [
    ("cycles", "end_date", "2017-02-30"),
    ("response_assessments", "marrow_blasts_pct", "101"),
    ("adverse_events", "ctcae_term", "Pyrexia"),
    ("patients", "birth_year", "2005"),
    ("follow_up", "vital_status", "dead"),
]


def import_rows(case_number, site_case_start) -> dict:
    """One new case with a record of every kind, in the import template's columns."""
    s = site_case_start

    def d(n):
        return str(s + timedelta(days=n))

    key = {"site_case_number": case_number}
    return {
        "patients": [
            {**key, "sex": "male", "birth_year": "1970", "diagnosis_date": d(-300),
             "blinatumomab_start_date": d(0), "ecog": "1", "salvage_phase": "1",
             "prior_therapies_n": "2", "relapse_site": "marrow", "marrow_blasts_pct": "60",
             "cyto_dx_abnormalities_n": "0", "cyto_dx_modal_number": "46",
             "cyto_start_done": "no", "dexamethasone_mg_before": "40"}
        ],
        "cycles": [
            {**key, "cycle_number": "1", "start_date": d(0), "end_date": d(27),
             "starting_dose_ug_per_day": "9", "step_up_day": "8",
             "step_up_dose_ug_per_day": "28", "outcome": "completed"}
        ],
        "response_assessments": [
            {**key, "cycle_number": "1", "assessment_date": d(29), "marrow_blasts_pct": "4.9",
             "anc_10e9_per_l": "1.0", "platelets_10e9_per_l": "101"}
        ],
        "adverse_events": [
            {**key, "cycle_number": "1", "ctcae_term": "Cytokine release syndrome",
             "grade": "2", "onset_date": d(2), "resolution_date": d(5), "serious": "no",
             "attribution": "probable", "outcome": "recovered"}
        ],
        "follow_up": [{**key, "last_contact_date": d(200), "vital_status": "alive"}],
    }  # fmt: skip


def csv_bytes(rows) -> bytes:
    import csv

    header = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# --- the test ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_registrys_people_in_random_order(demo_registry):
    journeys = math.ceil(JOURNEY_STEPS / STEPS_PER_JOURNEY)
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    TALLY.__init__()
    run_state_machine_as_test(
        RegistryJourneys,
        # Every journey walks all its steps: Hypothesis otherwise ends new journeys early to
        # explore shorter ones (a private argument of hypothesis.stateful, used by its own tests).
        _min_steps=STEPS_PER_JOURNEY + 1,
        settings=settings(
            max_examples=journeys,
            stateful_step_count=STEPS_PER_JOURNEY + 2,
            deadline=None,
            derandomize=True,  # the same journeys on every run: a failure is reproducible
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
    if os.environ.get("JOURNEY_PROFILE"):
        print(f"CPU time of the test process: {time.process_time():.1f} s")
        for shape, seconds in TIMINGS.most_common(25):
            print(f"{seconds:7.2f} s {REQUESTS[shape]:5d} x {shape}")
    print(f"journeys: {TALLY.journeys}, {TALLY.steps} steps; saved {dict(TALLY.saved)}; refused "
          f"{dict(TALLY.refused)}; {dict(TALLY.actions)}")  # fmt: skip
    assert TALLY.steps >= JOURNEY_STEPS, f"only {TALLY.steps} steps ran"
    if JOURNEY_STEPS < 300:  # a short walk (while writing a rule) need not do everything
        return
    # The walk did what it is for: saves and refusals of many kinds, the monitors' work.
    assert sum(TALLY.saved.values()) >= AT_LEAST["saves"], dict(TALLY.saved)
    kinds = [k for k in m.KINDS if TALLY.saved[k]]
    assert len(kinds) >= AT_LEAST["kinds saved"], f"only {kinds} saved"
    assert sum(TALLY.refused.values()) >= AT_LEAST["refusals"], dict(TALLY.refused)
    for action in DONE_IN_EVERY_RUN:
        assert TALLY.actions[action] > 0, f"never {action}: {dict(TALLY.actions)}"
