"""Browser data entry: the case list, the case page and the case report forms (CRFs).

Every view reaches its case through `case_of()` (scoped by registry.access) and the case's records
through the case's related managers, so another site's case or record is a 404 on every URL and
method. Saves run in transaction.atomic under select_for_update, refusing a stale `version`.
"""

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import (
    Case,
    Count,
    OuterRef,
    ProtectedError,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import ctcae, forms, history, paper_twin, rules
from .access import (
    MAY_NOT_CHANGE,
    case_institutions_for,
    case_rights,
    landing_url,
    may_change_case,
    patients_for,
    registering_institutions_for,
    request_memberships,
)
from .history import Change, case_history
from .models import (
    CrfStatus,
    Cycle,
    Patient,
    ResponseAssessment,
)

PAGE_SIZE = 25


@dataclass(frozen=True)
class RecordKind:
    """One kind of case record as the URLs see it."""

    slug: str
    title: str
    form: type
    related: str | None  # related name on Patient; None: the patient itself
    many: bool = True

    @property
    def crf(self) -> str:
        return CrfStatus.crf_of(self.form._meta.model)

    def records(self, patient):
        return getattr(patient, self.related).all()

    def record(self, patient):
        """A singleton's record, or a new unsaved one."""
        if self.related is None:
            return patient
        model = self.form._meta.model
        return getattr(patient, self.related, None) or model(patient=patient)


KINDS = {
    k.slug: k
    for k in [
        RecordKind(
            "registration", gettext_lazy("Registration"), forms.PatientForm, None, many=False
        ),
        RecordKind(
            "baseline", gettext_lazy("Baseline"), forms.BaselineForm, "baseline", many=False
        ),
        RecordKind("cycles", gettext_lazy("Cycle"), forms.CycleForm, "cycles"),
        RecordKind(
            "assessments", gettext_lazy("Response assessment"), forms.AssessmentForm, "assessments"
        ),
        RecordKind(
            "adverse-events",
            gettext_lazy("Adverse event"),
            forms.AdverseEventForm,
            "adverse_events",
        ),
        RecordKind(
            "transplant",
            gettext_lazy("Allogeneic SCT"),
            forms.TransplantForm,
            "transplant",
            many=False,
        ),
        RecordKind(
            "subsequent-therapies",
            gettext_lazy("Subsequent therapy"),
            forms.SubsequentTherapyForm,
            "subsequent_therapies",
        ),
        RecordKind(
            "follow-up", gettext_lazy("Follow-up"), forms.FollowUpForm, "followup", many=False
        ),
    ]
}


def case_of(request, pk) -> Patient:
    """The case if the user may open it, else 404 (a guessed ID reveals nothing). Any method but
    GET/HEAD changes the case: only its site's investigators may (registry.access), else 403."""
    memberships = request_memberships(request)
    cases = patients_for(request.user, memberships=memberships).select_related("institution")
    changes = request.method not in ("GET", "HEAD", "OPTIONS")
    if changes:
        # A record's rules read the case's death date (follow-up) and baseline blasts: in the
        # same query rather than one query each during validation.
        cases = cases.select_related("followup", "baseline")
    patient = get_object_or_404(cases, pk=pk)
    if changes and not may_change_case(request.user, patient, memberships):
        raise PermissionDenied(MAY_NOT_CHANGE)
    return patient


def case_for_change(request, pk) -> Patient:
    """The case, for a page whose only purpose is a change (a new record, a removal): refused
    with 403 on every method to those who may only read the case."""
    patient = case_of(request, pk)
    if not may_change_case(request.user, patient, request_memberships(request)):
        raise PermissionDenied(MAY_NOT_CHANGE)
    return patient


def case_url(patient) -> str:
    return reverse("registry:case", args=[patient.pk])


def stored_status(patient, crf) -> CrfStatus | None:
    return patient.crf_statuses.filter(crf=crf).first()


# --- History and concurrent edits ---------------------------------------------------------------


def changes_since(record, seen_version) -> list[Change] | None:
    """Lock the record's row. None if nobody saved it since `seen_version`, else their changes.

    Call inside transaction.atomic(): the lock holds until the caller's save commits.
    """
    if record.pk is None:
        return None
    model = type(record)
    current = model.objects.select_for_update().filter(pk=record.pk).first()
    if current is None:
        return [Change(None, _("another user"), "", "", "", _("removed"), "")]
    try:
        seen = int(seen_version)
    except (TypeError, ValueError):
        seen = None
    if seen == current.version:
        return None
    versions = list(current.history.select_related("history_user").order_by("history_date"))
    base = next((h for h in reversed(versions) if h.version == seen), None)
    latest = versions[-1]
    if base is None:  # they created it: all its values are theirs
        return history.values_of(latest)
    users = {h.history_user for h in versions[versions.index(base) + 1 :]}
    names = ", ".join(sorted(u.get_username() for u in users if u)) or _("system")
    return [
        Change(c.when, names, c.record, c.field, c.old, c.new, c.reason)
        for c in history.changes(latest, base)
    ]


# --- Case list ----------------------------------------------------------------------------------

SORTS = {  # key: (column, heading)
    "study_id": ("study_id", gettext_lazy("Study ID")),
    "start": ("blinatumomab_start_date", gettext_lazy("Blinatumomab start")),
    "cycles": ("n_cycles", gettext_lazy("Cycles given")),
    "response": ("best_rank", gettext_lazy("Best response (derived)")),
}


def _best_response_rank():
    """Rank of the best response ever reached (rules.BEST_RESPONSE_ORDER); past the end = NE."""
    rank = Case(
        *[When(response=c, then=Value(i)) for i, c in enumerate(rules.BEST_RESPONSE_ORDER)],
        default=Value(len(rules.BEST_RESPONSE_ORDER)),
    )
    ranks = ResponseAssessment.objects.filter(patient=OuterRef("pk")).annotate(rank=rank)
    return Coalesce(
        Subquery(ranks.order_by("rank").values("rank")[:1]), len(rules.BEST_RESPONSE_ORDER)
    )


def _cycle_count():
    per_case = Cycle.objects.filter(patient=OuterRef("pk")).order_by().values("patient")
    return Coalesce(Subquery(per_case.annotate(n=Count("pk")).values("n")), 0)


@login_required
def case_list(request):
    elsewhere = landing_url(request.user, request_memberships(request))
    if elsewhere:  # no case to list: their work is elsewhere (a statistician's analyses)
        return redirect(elsewhere)
    sites = list(case_institutions_for(request.user))
    by_code = {s.code: s for s in sites}
    site = by_code.get(request.GET.get("site")) or by_code.get(request.session.get("registry_site"))
    site = site or (sites[0] if sites else None)
    cases = patients_for(request.user).filter(institution=site)
    if site and request.session.get("registry_site") != site.code:
        request.session["registry_site"] = site.code
    query = request.GET.get("q", "").strip()
    if query:
        cases = cases.filter(study_id__icontains=query)
    sort = request.GET.get("sort", "study_id")
    if sort.lstrip("-") not in SORTS:
        sort = "study_id"
    order = ("-" if sort.startswith("-") else "") + SORTS[sort.lstrip("-")][0]
    columns = [  # (sort on click, heading, arrow)
        (f"-{key}" if sort == key else key, heading, {key: "▲", f"-{key}": "▼"}.get(sort, ""))
        for key, (_column, heading) in SORTS.items()
    ]
    cases = CrfStatus.annotate_started(cases).annotate(
        n_cycles=_cycle_count(), best_rank=_best_response_rank()
    )
    cases = cases.order_by(order, "study_id").prefetch_related("crf_statuses__marked_complete_by")
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    labels = [*rules.BEST_RESPONSE_ORDER, rules.NOT_EVALUABLE]
    for p in page:
        p.best_response = labels[p.best_rank] if p.started_assessments else ""
        p.crfs = CrfStatus.for_patient(p)
        p.state = CrfStatus.case_state(p.crfs)
    context = {
        "sites": sites,
        "site": site,
        "page": page,
        "query": query,
        "sort": sort,
        "columns": columns,
        "crf_choices": CrfStatus.CRF_CHOICES,
        "can_register": registering_institutions_for(request.user).exists(),
        "synthetic": _synthetic_label(*page),
    }
    return render(request, "registry/case_list.html", context)


def _synthetic_label(*patients) -> str:
    """The demo twin's label when any of these cases is one of its invented patients."""
    twin = any(paper_twin.is_twin(p.site_case_number) for p in patients)
    return _(paper_twin.LABEL) if twin else ""


# --- Registration -------------------------------------------------------------------------------


@login_required
def register(request):
    sites = registering_institutions_for(request.user)
    if not sites.exists():
        raise Http404(_("You are not an investigator at any site."))
    initial = {"institution": sites.filter(code=request.session.get("registry_site")).first()}
    form = forms.RegistrationForm(request.POST or None, institutions=sites, initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            patient = form.save()
        messages.success(
            request,
            _("%(case)s registered. Enter the baseline next.") % {"case": patient.study_id},
        )
        return redirect(case_url(patient))
    # Patient.eligibility_failures() is the rule; the page only repeats its reasons on top.
    failures = form.instance.eligibility_failures() if form.is_bound else []
    return render(request, "registry/register.html", {"form": form, "failures": failures})


# --- Case page ----------------------------------------------------------------------------------


def _timeline(patient):
    """(date, kind slug, label, text, record) for every dated fact of the case, in date order."""
    events = [
        (patient.diagnosis_date, "registration", _("Diagnosis"), _("ALL diagnosed"), None),
        (
            patient.blinatumomab_start_date,
            "registration",
            _("Start"),
            _("Blinatumomab day 1"),
            None,
        ),
    ]
    baseline = getattr(patient, "baseline", None)
    if baseline:
        text = f"ECOG {baseline.ecog}, {baseline.get_salvage_phase_display().lower()}"
        events.append((patient.blinatumomab_start_date, "baseline", _("Baseline"), text, None))
    for c in patient.cycles.all():
        end = c.end_date or _("ongoing")
        text = _("Cycle %(n)s: %(start)s to %(end)s, %(outcome)s") % {
            "n": c.number,
            "start": c.start_date,
            "end": end,
            "outcome": c.get_outcome_display().lower(),
        }
        events.append((c.start_date, "cycles", _("Cycle"), text, c))
    for a in patient.assessments.all():
        text = _("Response %(response)s (blasts %(blasts)s%%)") % {
            "response": a.response,
            "blasts": a.marrow_blasts_pct,
        }
        events.append((a.assessment_date, "assessments", _("Assessment"), text, a))
    for ae in patient.adverse_events.all():
        text = _("%(term)s grade %(grade)s") % {"term": ae.term_display, "grade": ae.grade}
        events.append((ae.onset_date, "adverse-events", _("AE"), text, ae))
    transplant = getattr(patient, "transplant", None)
    if transplant:
        text = _("Allogeneic SCT (%(donor)s)") % {
            "donor": transplant.get_donor_type_display().lower()
        }
        events.append((transplant.sct_date, "transplant", _("SCT"), text, None))
    for t in patient.subsequent_therapies.all():
        text = f"{t.regimen} ({t.get_category_display().lower()})"
        events.append((t.start_date, "subsequent-therapies", _("Therapy"), text, t))
    followup = getattr(patient, "followup", None)
    if followup:
        if followup.relapse_or_progression_date:
            relapse = _("Relapse")
            events.append(
                (followup.relapse_or_progression_date, "follow-up", relapse, relapse, None)
            )
        if followup.death_date:
            text = _("Death (%(cause)s)") % {"cause": followup.get_death_cause_display().lower()}
            events.append((followup.death_date, "follow-up", _("Death"), text, None))
        text = _("Last contact: %(status)s") % {
            "status": followup.get_vital_status_display().lower()
        }
        events.append((followup.last_contact_date, "follow-up", _("Follow-up"), text, None))
    return sorted(events, key=lambda e: e[0])


@login_required
def case(request, pk):
    patient = case_of(request, pk)
    crfs = CrfStatus.for_patient(patient)
    rights = case_rights(request.user, patient, crfs, request_memberships(request))
    for s in crfs:
        s.may_edit = rights.may_edit(s.crf)
    timeline = [
        (day, slug, label, text, record, rights.may_edit(KINDS[slug].crf))
        for day, slug, label, text, record in _timeline(patient)
    ]
    context = {
        "patient": patient,
        "crfs": crfs,
        "state": CrfStatus.case_state(crfs),
        "rights": rights,
        "timeline": timeline,
        "history": case_history(patient),
        "next_cycle": patient.cycles.count() + 1,
        "synthetic": _synthetic_label(patient),
    }
    return render(request, "registry/case.html", context)


@login_required
def crf_complete(request, pk, crf):
    patient = case_of(request, pk)
    if request.method != "POST":
        return redirect(case_url(patient))
    label = dict(CrfStatus.CRF_CHOICES)[crf]
    if crf in CrfStatus.NEEDS_RECORD and not CrfStatus.crf_has_records(patient, crf):
        messages.error(
            request, _("%(crf)s: enter the data before marking the CRF complete.") % {"crf": label}
        )
        return redirect(case_url(patient))
    with transaction.atomic():
        status, _created = CrfStatus.objects.select_for_update().get_or_create(
            patient=patient, crf=crf
        )
        if status.marked_complete_at is None and not status.is_locked:
            now = timezone.now()
            status.marked_complete_at, status.marked_complete_by = now, request.user
            status.first_completed_at = status.first_completed_at or now
            status.refresh_status()  # complete, or still "query open" while a query is open
            status.save()
            messages.success(request, _("%(crf)s marked complete.") % {"crf": label})
        else:
            messages.info(
                request,
                _("%(crf)s is already %(status)s.")
                % {"crf": label, "status": status.get_status_display().lower()},
            )
    return redirect(case_url(patient))


# --- Case report forms --------------------------------------------------------------------------


def _conflict_message(changes) -> str:
    users = ", ".join(sorted({str(c.user) for c in changes})) or _("another user")
    listed = "; ".join(f"{c.field}: {c.new}" for c in changes if c.field) or _("the record")
    return _(
        "Not saved: %(users)s changed this record while you were editing it. Their values: "
        "%(values)s. The form now shows the saved record; enter your change again if it still "
        "applies."
    ) % {"users": users, "values": listed}


def posted_version_is_bad(request) -> bool:
    """Every CRF and removal form posts the version its record was read at: a number, or empty
    when there was no record yet. Missing or anything else: not a form of ours, or an incomplete
    post (bad_form())."""
    raw = request.POST.get("version")
    return raw is None or (raw.strip() != "" and not raw.strip().isdigit())


def bad_form(request, patient=None):
    """400: the post cannot be read as the page's form; nothing was saved."""
    context = {"patient": patient, "reload": request.get_full_path()}
    return render(request, "400.html", context, status=400)


def _locked(request, patient, kind, rights):
    messages.error(request, f"{kind.title}: {rights.why_not(kind.crf)}")
    return redirect(case_url(patient))


def _edit(request, patient, kind, record, initial=None):
    """Show or save one CRF record: stale versions and rule failures save nothing. Who may only
    read the CRF (a monitor; anybody once it is locked) sees it read-only, without Save."""
    status = stored_status(patient, kind.crf)
    statuses = [status] if status else []
    rights = case_rights(request.user, patient, statuses, request_memberships(request))
    editable = rights.may_edit(kind.crf)  # case_of() already refused a monitor's POST (403)
    if not editable and (request.method == "POST" or (record.pk is None and kind.many)):
        return _locked(request, patient, kind, rights)
    if request.method == "POST" and posted_version_is_bad(request):
        return bad_form(request, patient)
    needs_reason = editable and bool(status and status.needs_reason)
    options = {"patient": patient, "needs_reason": needs_reason}
    form = kind.form(request.POST or None, instance=record, initial=initial, **options)
    if not editable:
        for field in form.fields.values():
            field.disabled = True
    if request.method == "POST":
        changes = None
        try:
            with transaction.atomic():
                changes = changes_since(record, request.POST.get("version"))
                if changes is None and form.is_valid():
                    record._change_reason = form.cleaned_data.get("change_reason") or None
                    form.save()
                    messages.success(request, _("%(record)s saved.") % {"record": kind.title})
                    return redirect(case_url(patient))
        except IntegrityError:
            form.add_error(
                None, _("Another user saved the same record at the same time: not saved.")
            )
        if changes is not None:
            messages.error(request, _conflict_message(changes))
            record = type(record).objects.filter(pk=record.pk).first()
            if record is None:  # removed by the other user
                return redirect(case_url(patient))
            form = kind.form(instance=record, **options)
    context = {
        "patient": patient,
        "kind": kind,
        "form": form,
        "form_html": forms.render_crf_form(
            form, blank=editable and record.pk is None and not initial
        ),
        "record": record,
        "editable": editable,
        "read_only_reason": rights.why_not(kind.crf),
        "history": case_history(patient, record) if record.pk else [],
    }
    if kind.slug == "adverse-events":
        context["ctcae_picklist"] = ctcae.picklist_html()
    return render(request, "registry/crf_form.html", context)


@login_required
def single_record(request, pk, kind):
    patient = case_of(request, pk)
    return _edit(request, patient, KINDS[kind], KINDS[kind].record(patient))


@login_required
def record_new(request, pk, kind):
    patient = case_for_change(request, pk)
    kind = KINDS[kind]
    record = kind.form._meta.model(patient=patient)
    initial = {}
    if kind.slug == "cycles":
        number = patient.cycles.count() + 1
        initial = {"number": number, **Cycle.planned_doses(number)}
        if number == 1:
            initial["start_date"] = patient.blinatumomab_start_date
    return _edit(request, patient, kind, record, initial)


@login_required
def record_edit(request, pk, kind, record_pk):
    patient = case_of(request, pk)
    record = get_object_or_404(KINDS[kind].records(patient), pk=record_pk)
    return _edit(request, patient, KINDS[kind], record)


@login_required
def record_remove(request, pk, kind, record_pk):
    patient = case_for_change(request, pk)
    kind = KINDS[kind]
    record = get_object_or_404(kind.records(patient), pk=record_pk)
    status = stored_status(patient, kind.crf)
    statuses = [status] if status else []
    rights = case_rights(request.user, patient, statuses, request_memberships(request))
    if not rights.may_edit(kind.crf):
        return _locked(request, patient, kind, rights)
    if request.method == "POST" and posted_version_is_bad(request):
        return bad_form(request, patient)
    form = forms.RemoveForm(request.POST or None, initial={"version": record.version})
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                changes = changes_since(record, form.cleaned_data["version"])
                if changes is None:
                    record._change_reason = form.cleaned_data["reason"]
                    record.delete()
                    messages.success(request, _("%(record)s removed.") % {"record": kind.title})
                    return redirect(case_url(patient))
            messages.error(request, _conflict_message(changes))
            return redirect(case_url(patient))
        except ProtectedError as e:
            used_by = "; ".join(sorted({str(o) for o in e.protected_objects}))
            form.add_error(
                None,
                _("Not removed: these records refer to it: %(records)s.") % {"records": used_by},
            )
    context = {"patient": patient, "kind": kind, "record": record, "form": form}
    return render(request, "registry/record_remove.html", context)


# The values the live response box sends: ResponseAssessment.derive() reads no other field.
LIVE_RESPONSE_FIELDS = ("marrow_blasts_pct", "anc_10e9_per_l", "platelets_10e9_per_l", "emd_status")


@login_required
def derive_response(request, pk):
    """The response the server will store for these values: ResponseAssessment.derive().

    Each value is checked by its model field's own clean() (type, digits, range, choices): while
    one is invalid the form would refuse to save, so there is no category to show, only why."""
    patient = case_of(request, pk)
    assessment = ResponseAssessment(patient=patient)
    errors = {}
    for name in LIVE_RESPONSE_FIELDS:
        field = ResponseAssessment._meta.get_field(name)
        raw = request.GET.get(name, "").strip()
        try:
            value = field.clean(raw, assessment) if raw else field.get_default()
        except ValidationError as e:
            errors[name] = e.messages
        else:
            setattr(assessment, field.attname, value)
    if errors:
        message = (
            _("No response while a value is invalid.")
            + " "
            + " ".join(
                f"{capfirst(_field_label(name))}: {' '.join(texts)}"
                for name, texts in errors.items()
            )
        )
        return _inert_json({"response": "", "label": "", "errors": errors, "message": message})
    code = assessment.derive()
    label = str(dict(rules.RESPONSE_CHOICES)[code])
    return _inert_json({"response": code, "label": label, "errors": {}, "message": ""})


def _field_label(name) -> str:
    return str(ResponseAssessment._meta.get_field(name).verbose_name)


def _inert_json(data) -> HttpResponse:
    """JSON whose strings carry <, > and & as \\u escapes (as json_script does): the messages
    quote what was typed, and the answer must stay inert even if something reads it as HTML."""
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HttpResponse(text, content_type="application/json")


# --- Error pages ----------------------------------------------------------------------------------


def _back_url(request) -> str:
    """The page the user came from when it is one of ours (not this one), else the home page."""
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, {request.get_host()}, require_https=request.is_secure()
    ):
        if urlsplit(referer).path != request.path:
            return referer
    return reverse("registry:case_list")


def permission_denied(request, exception=None):
    """handler403: a styled page that says why (the PermissionDenied message) and leads back.
    Django uses it with DEBUG on and off alike."""
    reason = str(exception or "") or _("Your role does not allow this.")
    context = {"reason": reason, "back": _back_url(request)}
    return render(request, "403.html", context, status=403)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a form post without its valid security token (an old page, or cookies
    blocked) is refused on the styled 403 page, saying what to do."""
    reason = _(
        "The form was sent without a valid security token: the page was probably open too long "
        "or cookies are blocked. Reload the page and enter your change again."
    )
    context = {"reason": reason, "back": _back_url(request)}
    return render(request, "403.html", context, status=403)


def bad_request(request, exception=None):
    """handler400 (with DEBUG off; the views answer their own 400s with bad_form()). Reads
    nothing of the request: it also answers requests refused for their Host header."""
    return render(request, "400.html", {"back": "/"}, status=400)
