"""Data exchange pages: bulk import, the import template, the codebook, ODM export, API token."""

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from registry.access import full_access_sites, readable_patients, registering_institutions_for

from . import codebook, odm, spec, template
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
