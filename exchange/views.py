"""Data exchange pages: bulk import, the import template, the codebook, ODM export, API token,
the cases in the template's format, and background exports."""

import tempfile

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from registry.access import (
    case_institutions_for,
    export_scope,
    export_scope_allowed,
    full_access_sites,
    patients_for,
    readable_patients,
    registering_institutions_for,
)

from . import codebook, export, odm, spec, tasks, template
from .importer import (
    Budget,
    ImportResult,
    Limits,
    Problem,
    Source,
    import_tables,
    problems_csv,
    read_upload,
)
from .models import UNAVAILABLE_ERROR, ExportJob
from .tokens import current_token, expires_at, is_expired


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".csv,.zip,.xlsx"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            # No file chosen posts an empty list: "required", not an import of nothing.
            return [single(d, initial) for d in data] if data else [single(None, initial)]
        return [single(data, initial)]


class ImportForm(forms.Form):
    files = MultipleFileField(
        label=_("Template files"),
        help_text=_("The template's CSV files (select several), a zip of them, or one .xlsx."),
    )
    institution = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label=_("Site"),
        empty_label=_("Each row's institution column"),
        help_text=_("The site of every row; or leave it to the files' institution column."),
    )
    check_only = forms.BooleanField(
        required=False, label=_("Check only: apply every rule, save nothing")
    )

    def __init__(self, *args, institutions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = institutions
        if institutions.count() == 1:
            self.fields["institution"].initial = institutions.first()


@login_required
def index(request):
    context = {
        "can_import": registering_institutions_for(request.user).exists(),
        "record_types": spec.RECORD_TYPES,
        "case_sites": ", ".join(
            case_institutions_for(request.user).order_by("code").values_list("code", flat=True)
        ),
        "export_kinds": _export_kinds(request.user),
    }
    return render(request, "exchange/index.html", context)


# CSRF is checked inside, after the size: the middleware would read (and spool) the whole body.
@csrf_exempt
@login_required
@require_http_methods(["GET", "POST"])
def import_cases(request):
    sites = registering_institutions_for(request.user)
    if not sites.exists():
        raise PermissionDenied(_("Bulk import is for site investigators (their own sites)."))
    limits = Limits.from_settings()
    too_large = limits.upload_too_large(int(request.META.get("CONTENT_LENGTH") or 0))
    if request.method == "POST" and too_large:
        # Read the refused body in small pieces and drop it: the browser then shows this page
        # rather than a reset connection (and runserver does not read the rest into memory).
        while request.read(64 * 1024):
            pass
        result = ImportResult(problems=[Problem("", None, "", too_large)])
        context = {"form": ImportForm(institutions=sites), "result": result}
        return render(request, "exchange/import.html", context, status=413)
    return _import_upload(request, sites, limits)


@csrf_protect
def _import_upload(request, sites, limits):
    form = ImportForm(request.POST or None, request.FILES or None, institutions=sites)
    result = None
    if request.method == "POST" and form.is_valid():
        # "Download the problems": a check only, answered with the problem report as CSV.
        report = "problems_csv" in request.POST
        problems, tables, budget = [], [], Budget(limits)
        for upload in form.cleaned_data["files"]:
            tables += read_upload(Source.from_upload(upload), problems, budget)
        result = import_tables(
            tables,
            problems=problems,
            commit=not (form.cleaned_data["check_only"] or report),
            user=request.user,
            institutions=sites,
            institution=form.cleaned_data["institution"],
        )
        if report:
            return _download(
                problems_csv(result.problems), "text/csv; charset=utf-8", "import_problems.csv"
            )
    status = 400 if result is not None and not result.ok else 200
    context = {"form": form, "result": result, "check_only": form.data.get("check_only")}
    return render(request, "exchange/import.html", context, status=status)


@login_required
def template_doc(request):
    files = [(rt, template.column_docs(rt)) for rt in spec.RECORD_TYPES]
    context = {"files": files, "introduction": template.INTRODUCTION}
    return render(request, "exchange/template_doc.html", context)


def _download(content, content_type, filename):
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def template_zip(request):
    return _download(template.template_zip(), "application/zip", "import_template.zip")


@login_required
def template_xlsx(request):
    return _download(
        template.template_xlsx(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "import_template.xlsx",
    )


@login_required
def codebook_page(request):
    return render(request, "exchange/codebook.html", {"groups": codebook.grouped()})


@login_required
def codebook_csv(request):
    return _download(codebook.codebook_csv(), "text/csv; charset=utf-8", "codebook.csv")


@login_required
def odm_export(request):
    """The study definition, with the clinical data of the cases the user may read."""
    with_data = request.GET.get("data", "1") != "0"
    patients = readable_patients(request.user) if with_data else None
    if with_data and _too_many(request, patients, ExportJob.ODM):
        return redirect("exchange:exports")
    full_sites = full_access_sites(request.user)
    name = "blinatumomab_registry_odm.xml" if with_data else "blinatumomab_registry_study_odm.xml"
    response = StreamingHttpResponse(
        _in_english(odm.odm_chunks(patients, full_sites=full_sites)),
        content_type="application/xml",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _in_english(chunks):
    """An export is language-independent (README "Languages"): the ODM's labels in English."""
    with translation.override("en"):
        yield from chunks


class ObtainExpiringAuthToken(ObtainAuthToken):
    """POST username and password: the user's token, a new one when theirs has expired."""

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = current_token(serializer.validated_data["user"], renew_expired=True)
        return Response({"token": token.key, "expires": expires_at(token).isoformat()})


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request):
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        if request.POST.get("action") != "revoke":
            Token.objects.create(user=request.user)
        return redirect("exchange:api_token")
    token = current_token(request.user)
    context = {
        "token": token,
        "expires": token and expires_at(token),
        "expired": token is not None and is_expired(token),
        "ttl_days": settings.API_TOKEN_TTL_DAYS,
    }
    return render(request, "exchange/api_token.html", context)


# --- The cases in the import template's format, and background exports -------------------------


def _too_many(request, patients, kind) -> bool:
    """More cases than a request may take (gunicorn's timeout): the user is sent to the
    background export instead, with a message saying why."""
    n = patients.count()
    if n <= settings.EXPORT_SYNC_MAX_CASES:
        return False
    label = dict(ExportJob.KIND_CHOICES)[kind]
    message = ngettext(
        "%(n)s case is more than a download can take (EXPORT_SYNC_MAX_CASES = %(max)s): "
        "start “%(label)s” below; it runs in the background and its download appears here when "
        "it is ready.",
        "%(n)s cases are more than a download can take (EXPORT_SYNC_MAX_CASES = %(max)s): "
        "start “%(label)s” below; it runs in the background and its download appears here when "
        "it is ready.",
        n,
    )
    limit = settings.EXPORT_SYNC_MAX_CASES
    messages.info(request, message % {"n": f"{n:,}", "max": f"{limit:,}", "label": label})
    return True


@login_required
@require_http_methods(["GET"])
def cases_zip(request):
    """The cases of the user's own sites (registry.access.patients_for) in the import
    template's format: a zip of its CSV files, every field in full."""
    if not case_institutions_for(request.user).exists():
        raise PermissionDenied(_("The cases of a site are for its investigators and monitors."))
    patients = patients_for(request.user)
    if _too_many(request, patients, ExportJob.TEMPLATE):
        return redirect("exchange:exports")
    spool = tempfile.TemporaryFile()  # closed by the response once sent
    export.write_zip(spool, patients)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename="registry_cases.zip")


def _export_kinds(user) -> list[tuple[str, str, str]]:
    """(kind, label, scope) of each background export the user may start."""
    kinds = []
    scope = export_scope(user)
    if scope:
        kinds += [
            (kind, label, scope)
            for kind, label in ExportJob.KIND_CHOICES
            if kind != ExportJob.DATASET_XLSX
        ]
    dataset_scope = export_scope(user, dataset=True)
    if dataset_scope:
        label = dict(ExportJob.KIND_CHOICES)[ExportJob.DATASET_XLSX]
        kinds.append((ExportJob.DATASET_XLSX, label, dataset_scope))
    return kinds


@login_required
@require_http_methods(["GET", "POST"])
def exports(request):
    """GET: the user's background exports with their progress; POST: start one."""
    kinds = {kind: scope for kind, _label, scope in _export_kinds(request.user)}
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in kinds:
            raise PermissionDenied(_("You cannot start this export."))
        job = ExportJob.objects.create(kind=kind, requested_by=request.user, scope=kinds[kind])
        return _start(request, job)
    ExportJob.fail_stale()  # a lost worker shows as failed, never as running forever
    context = {
        "jobs": ExportJob.objects.filter(requested_by=request.user)[:20],
        "kinds": _export_kinds(request.user),
    }
    return render(request, "exchange/exports.html", context)


def _start(request, job):
    try:
        tasks.start(job)
    except Exception as exc:  # the broker is down: say so, never leave it queued
        ExportJob.objects.filter(pk=job.pk, status=ExportJob.QUEUED).update(
            status=ExportJob.FAILED, error=UNAVAILABLE_ERROR % {"error": type(exc).__name__}
        )
        messages.error(request, _("The job service is unavailable: the export was not started."))
        return redirect("exchange:exports")
    messages.success(
        request,
        gettext("%(export)s: started in the background.") % {"export": job.get_kind_display()},
    )
    return redirect("exchange:exports")


def _job(request, job_id) -> ExportJob:
    """The user's own job (anybody else's, or a guessed ID, is a 404)."""
    return get_object_or_404(ExportJob, pk=job_id, requested_by=request.user)


@login_required
@require_http_methods(["GET"])
def export_status(request, job_id):
    ExportJob.fail_stale()
    job = _job(request, job_id)
    return JsonResponse(
        {
            "status": job.status,
            "label": job.get_status_display(),
            "done": job.done,
            "total": job.total,
            "progress_pct": job.progress_pct,
            "finished": job.is_finished,
            "error": job.error_text,
        }
    )


@login_required
@require_http_methods(["GET"])
def export_download(request, job_id):
    job = _job(request, job_id)
    # The scope is checked again: a user who lost a site's rights no longer downloads its file.
    dataset = job.kind == ExportJob.DATASET_XLSX
    if not export_scope_allowed(request.user, job.scope, dataset=dataset):
        raise PermissionDenied(_("Your access has changed since this export: start it again."))
    if job.status != ExportJob.SUCCEEDED or not job.path.is_file():
        raise Http404(_("This export is not ready."))
    return FileResponse(open(job.path, "rb"), as_attachment=True, filename=job.filename)
