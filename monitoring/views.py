"""Monitoring pages: per-site progress, a site's edit checks, queries and cases, and the actions
(queries, verification, locks, signatures) the case page posts to.

Who may act is decided in registry.access: a case is reached through patients_for() (another
site's case is a 404), monitor actions need a monitor membership at the case's site (else 403),
answering needs an investigator membership there, signing the site's principal investigator.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from notifications.signals import batch as notification_batch
from registry.access import (
    investigated_patients_for,
    is_principal_investigator,
    monitored_institutions_for,
    monitored_patients_for,
    patients_for,
    progress_institutions_for,
)
from registry.models import CrfStatus, Patient

from . import checks, forms, records, services
from .models import EditCheckRun, Finding, Query, Signature

PAGE_SIZE = 50


def _case(request, pk) -> Patient:
    return get_object_or_404(patients_for(request.user).select_related("institution"), pk=pk)


def _monitored_case(request, pk) -> Patient:
    patient = _case(request, pk)
    if not monitored_patients_for(request.user).filter(pk=patient.pk).exists():
        raise PermissionDenied(
            _("Only the monitors of %(code)s do this.") % {"code": patient.institution.code}
        )
    return patient


def _monitored_site(request, code):
    return get_object_or_404(monitored_institutions_for(request.user), code=code)


def _query(request, pk) -> Query:
    return get_object_or_404(
        Query.objects.filter(patient__in=patients_for(request.user)).select_related(
            "patient__institution"
        ),
        pk=pk,
    )


def _back(request, default):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return redirect(target)
    return redirect(default)


def _case_url(patient):
    return reverse("registry:case", args=[patient.pk])


def _done(request, action, success, default):
    """Run a service call; show its refusal as an error message."""
    try:
        action()
    except services.MonitoringError as e:
        for message in e.messages:
            messages.error(request, message)
    else:
        messages.success(request, success)
    return _back(request, default)


# --- Progress -----------------------------------------------------------------------------------


def _by_site(queryset, site_path, **aggregates):
    rows = queryset.order_by().values(site_path).annotate(**aggregates)
    return {row[site_path]: row for row in rows}


def site_progress(sites) -> list[dict]:
    """One row of counts per site (and a total row last)."""
    sites = list(sites)
    crf_n = len(CrfStatus.CRF_CHOICES)
    patients = Patient.objects.filter(institution__in=sites)
    registered = _by_site(patients, "institution", n=Count("pk"))
    # Complete and locked as the case page and the case list say it (registry.CaseState).
    cases_complete = _by_site(CrfStatus.complete_cases(patients), "institution", n=Count("pk"))
    locked = _by_site(CrfStatus.locked_cases(patients), "institution", n=Count("pk"))
    signed = _by_site(
        patients.filter(
            Exists(Signature.objects.filter(patient=OuterRef("pk"), voided_at__isnull=True))
        ),
        "institution",
        n=Count("pk"),
    )
    crfs = _by_site(
        CrfStatus.objects.filter(patient__institution__in=sites),
        "patient__institution",
        complete=Count("pk", filter=Q(marked_complete_at__isnull=False)),
        verified=Count("pk", filter=Q(verified_at__isnull=False)),
    )
    queries = _by_site(
        Query.objects.filter(patient__institution__in=sites),
        "patient__institution",
        open=Count("pk", filter=Q(status=Query.OPEN)),
        answered=Count("pk", filter=Q(status=Query.ANSWERED)),
        closed=Count("pk", filter=Q(status=Query.CLOSED)),
    )
    findings = _by_site(
        Finding.objects.filter(patient__institution__in=sites),
        "patient__institution",
        n=Count("pk"),
    )
    rows = []
    for site in sites:
        n, q = registered.get(site.pk, {}).get("n", 0), queries.get(site.pk, {})
        rows.append(
            {
                "site": site,
                "cases": n,
                "crfs": n * crf_n,
                "crfs_complete": crfs.get(site.pk, {}).get("complete", 0),
                "cases_complete": cases_complete.get(site.pk, {}).get("n", 0),
                "open_queries": q.get("open", 0) + q.get("answered", 0),
                "answered_queries": q.get("answered", 0),
                "closed_queries": q.get("closed", 0),
                "crfs_verified": crfs.get(site.pk, {}).get("verified", 0),
                "cases_locked": locked.get(site.pk, {}).get("n", 0),
                "cases_signed": signed.get(site.pk, {}).get("n", 0),
                "findings": findings.get(site.pk, {}).get("n", 0),
                "last_run": EditCheckRun.objects.filter(institution=site).first(),
                "locked": site.locked_at is not None,
            }
        )
    keys = [k for k in (rows[0] if rows else {}) if k not in ("site", "last_run", "locked")]
    total = {k: sum(r[k] for r in rows) for k in keys}
    return rows, total


@login_required
def progress(request):
    sites = progress_institutions_for(request.user)
    if not sites.exists():
        raise PermissionDenied(_("The progress page is for monitors and staff."))
    rows, total = site_progress(sites)
    monitored = set(monitored_institutions_for(request.user).values_list("pk", flat=True))
    for row in rows:
        row["can_monitor"] = row["site"].pk in monitored
    return render(request, "monitoring/progress.html", {"rows": rows, "total": total})


# --- A site -------------------------------------------------------------------------------------


@login_required
def site(request, code):
    site = _monitored_site(request, code)
    findings = Finding.objects.filter(patient__institution=site).select_related("patient")
    unresolved = {
        q.check_key: q
        for q in services.unresolved_queries(patient__institution=site).exclude(check_key="")
    }
    finding_page = Paginator(findings, 100).get_page(request.GET.get("findings"))
    for finding in finding_page:
        finding.open_query = unresolved.get(finding.key)
    queries = (
        services.unresolved_queries(patient__institution=site)
        .select_related("patient", "opened_by")
        .order_by("patient__study_id", "opened_at")
    )
    cases = CrfStatus.annotate_started(site.patients.all()).prefetch_related(
        "crf_statuses", "signatures"
    )
    case_page = Paginator(cases.order_by("study_id"), PAGE_SIZE).get_page(request.GET.get("page"))
    for p in case_page:
        p.crfs = CrfStatus.for_patient(p)
        p.open_queries = sum(s.open_queries for s in p.crfs)
        p.signature = next((s for s in p.signatures.all() if s.voided_at is None), None)
        p.is_locked = CrfStatus.case_state(p.crfs).locked
    context = {
        "site": site,
        "findings": finding_page,
        "queries": queries,
        "cases": case_page,
        "last_run": EditCheckRun.objects.filter(institution=site).first(),
        "rules": checks.RULES,
        "lock_form": forms.OptionalReasonForm(),
        "unlock_form": forms.ReasonForm(),
    }
    return render(request, "monitoring/site.html", context)


@login_required
@require_POST
def run_checks(request, code):
    site = _monitored_site(request, code)
    run = checks.run(site, request.user)
    messages.success(
        request,
        _(
            "Edit checks of %(code)s: %(findings_n)s finding(s); "
            "%(queries_closed_n)s query(ies) closed because their finding is gone."
        )
        % {
            "code": site.code,
            "findings_n": run.findings_n,
            "queries_closed_n": run.queries_closed_n,
        },
    )
    return redirect("monitoring:site", code=site.code)


@login_required
@require_POST
def finding_query(request, pk):
    finding = get_object_or_404(
        Finding.objects.filter(patient__in=monitored_patients_for(request.user)), pk=pk
    )
    return _done(
        request,
        lambda: checks.open_query_from(finding, request.user),
        _("Query opened on %(patient)s.") % {"patient": finding.patient},
        reverse("monitoring:site", args=[finding.patient.institution.code]),
    )


@login_required
@require_POST
def query_all_findings(request, code):
    site = _monitored_site(request, code)
    opened, refused = 0, 0
    open_keys = set(
        services.unresolved_queries(patient__institution=site).values_list("check_key", flat=True)
    )
    with notification_batch():  # one e-mail per investigator for all these queries
        for finding in Finding.objects.filter(patient__institution=site).exclude(key__in=open_keys):
            try:
                checks.open_query_from(finding, request.user)
                opened += 1
            except services.MonitoringError:
                refused += 1
    message = f"{opened} query(ies) opened from the findings."
    if refused:
        message += f" {refused} not opened (locked cases or records gone)."
    messages.success(request, message)
    return redirect("monitoring:site", code=site.code)


# --- Queries ------------------------------------------------------------------------------------


@login_required
def query_new(request, pk):
    """Pick a record of the case (or a CRF), then a field and the question."""
    patient = _monitored_case(request, pk)
    token, crf = request.GET.get("record", ""), request.GET.get("crf", "")
    record = records.record_from_token(patient, token) if token else None
    if token and record is None:
        messages.error(request, _("That record no longer exists."))
        return redirect("monitoring:query_new", pk=patient.pk)
    if record is not None:
        crf = CrfStatus.crf_of(type(record))
    labels = dict(CrfStatus.CRF_CHOICES)
    if crf not in labels:
        context = {
            "patient": patient,
            "records": [
                (labels[c], c, [(records.record_label(r), records.record_token(r)) for r in rs])
                for c, rs in records.records_of(patient)
            ],
        }
        return render(request, "monitoring/query_pick.html", context)
    model = type(record) if record is not None else None
    form = forms.QueryForm(request.POST or None, model=model)
    if request.method == "POST" and form.is_valid():
        try:
            services.open_query(
                patient,
                crf,
                form.cleaned_data["message"],
                request.user,
                record=record,
                field_name=form.cleaned_data["field_name"],
            )
        except services.MonitoringError as e:
            form.add_error(None, e)
        else:
            messages.success(request, _("Query opened."))
            return redirect(_case_url(patient))
    context = {
        "patient": patient,
        "form": form,
        "record_label": records.record_label(record) if record is not None else "",
        "crf_label": labels[crf],
    }
    return render(request, "monitoring/query_new.html", context)


@login_required
@require_POST
def query_answer(request, pk):
    query = _query(request, pk)
    if not investigated_patients_for(request.user).filter(pk=query.patient_id).exists():
        raise PermissionDenied(
            _("Only the investigators of %(code)s answer.")
            % {"code": query.patient.institution.code}
        )
    form = forms.MessageForm(request.POST)
    message = form.data.get("message", "")
    return _done(
        request,
        lambda: services.answer_query(query, request.user, message),
        _("Query #%(pk)s answered.") % {"pk": query.pk},
        _case_url(query.patient),
    )


def _monitor_query(request, pk) -> Query:
    query = _query(request, pk)
    if not monitored_patients_for(request.user).filter(pk=query.patient_id).exists():
        raise PermissionDenied(
            _("Only the monitors of %(code)s do this.") % {"code": query.patient.institution.code}
        )
    return query


@login_required
@require_POST
def query_close(request, pk):
    query = _monitor_query(request, pk)
    message = request.POST.get("message", "")
    return _done(
        request,
        lambda: services.close_query(query, request.user, message),
        _("Query #%(pk)s closed.") % {"pk": query.pk},
        _case_url(query.patient),
    )


@login_required
@require_POST
def query_reopen(request, pk):
    query = _monitor_query(request, pk)
    message = request.POST.get("message", "")
    return _done(
        request,
        lambda: services.reopen_query(query, request.user, message),
        _("Query #%(pk)s re-opened.") % {"pk": query.pk},
        _case_url(query.patient),
    )


# --- Verification, locks, signatures --------------------------------------------------------------


@login_required
@require_POST
def crf_verify(request, pk, crf):
    patient = _monitored_case(request, pk)
    label = dict(CrfStatus.CRF_CHOICES)[crf]
    return _done(
        request,
        lambda: services.verify(patient, crf, request.user),
        _("%(label)s: source data verified.") % {"label": label},
        _case_url(patient),
    )


@login_required
@require_POST
def crf_unverify(request, pk, crf):
    patient = _monitored_case(request, pk)
    label = dict(CrfStatus.CRF_CHOICES)[crf]
    return _done(
        request,
        lambda: services.unverify(patient, crf, request.user),
        _("%(label)s: verification withdrawn.") % {"label": label},
        _case_url(patient),
    )


@login_required
@require_POST
def case_lock(request, pk):
    patient = _monitored_case(request, pk)
    reason = request.POST.get("reason", "")
    return _done(
        request,
        lambda: services.lock_case(patient, request.user, reason),
        _("%(patient)s locked.") % {"patient": patient},
        _case_url(patient),
    )


@login_required
@require_POST
def case_unlock(request, pk):
    patient = _monitored_case(request, pk)
    reason = request.POST.get("reason", "")
    return _done(
        request,
        lambda: services.unlock_case(patient, request.user, reason),
        _("%(patient)s unlocked.") % {"patient": patient},
        _case_url(patient),
    )


@login_required
@require_POST
def site_lock(request, code):
    site = _monitored_site(request, code)
    reason = request.POST.get("reason", "")
    return _done(
        request,
        lambda: services.lock_site(site, request.user, reason),
        _("Site %(code)s locked.") % {"code": site.code},
        reverse("monitoring:site", args=[site.code]),
    )


@login_required
@require_POST
def site_unlock(request, code):
    site = _monitored_site(request, code)
    reason = request.POST.get("reason", "")
    return _done(
        request,
        lambda: services.unlock_site(site, request.user, reason),
        _("Site %(code)s unlocked.") % {"code": site.code},
        reverse("monitoring:site", args=[site.code]),
    )


@login_required
def sign(request, pk):
    patient = _case(request, pk)
    if not is_principal_investigator(request.user, patient.institution):
        raise PermissionDenied(
            _("Only the principal investigator of %(code)s signs its cases.")
            % {"code": patient.institution.code}
        )
    form = forms.SignatureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.sign_case(
                patient,
                request.user,
                form.cleaned_data["password"],
                meaning=_(Signature.MEANING),
                request=request,
            )
        except services.MonitoringError as e:
            form.add_error(None, e)
        else:
            messages.success(request, _("%(patient)s signed.") % {"patient": patient})
            return redirect(_case_url(patient))
    context = {
        "patient": patient,
        "form": form,
        "meaning": _(Signature.MEANING),
        "crfs": CrfStatus.for_patient(patient),
        "is_complete": services.case_is_complete(patient),
        "signature": services.valid_signature(patient),
    }
    return render(request, "monitoring/sign.html", context)
