"""Case books: one case's PDF, and a site's archive (built in the background, then downloaded).

A case book is read like the case page, through registry.views.case_of() (whoever may open the
case; another site's case or a guessed ID is a 404). A site's archives are for the people who may
open every case of the site (registry.access.archive_institutions_for).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from analysis import background
from registry.access import archive_institutions_for
from registry.views import case_of

from .models import SiteArchive
from .tasks import build_site_archive_task


@login_required
@require_GET
def case_pdf(request, pk):
    from . import pdf  # ReportLab on the first case book, not at every process start

    patient = case_of(request, pk)
    with translation.override("en"):  # the study's record: one language, one content hash
        data, book = pdf.case_pdf(patient)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="casebook-{patient.study_id}.pdf"'
    response["X-Content-SHA256"] = book.sha256
    response["Cache-Control"] = "no-store"  # case data: not kept by browsers or proxies
    return response


def _site(request, code):
    return get_object_or_404(archive_institutions_for(request.user), code=code)


def _archive(request, archive_id) -> SiteArchive:
    return get_object_or_404(
        SiteArchive.objects.select_related("institution", "requested_by").filter(
            institution__in=archive_institutions_for(request.user)
        ),
        pk=archive_id,
    )


@login_required
def site_archives(request, code):
    """GET: the site's archives with their progress; POST: build a new one."""
    site = _site(request, code)
    if request.method == "POST":
        return _start(request, site)
    SiteArchive.fail_stale()  # a lost worker shows as failed, never as building forever
    archives = SiteArchive.objects.filter(institution=site).select_related("requested_by")[:20]
    context = {"site": site, "archives": archives, "n_cases": site.patients.count()}
    return render(request, "casebook/site.html", context)


def _start(request, site):
    archive = SiteArchive.objects.create(institution=site, requested_by=request.user)
    try:
        if background.enabled():
            # No broker (the demo): a thread of this process, as analysis runs and exports, not
            # the request itself (a large site's archive takes many minutes).
            transaction.on_commit(
                lambda: background.start_task(
                    build_site_archive_task, str(archive.pk), name=f"archive-{archive.pk}"
                )
            )
        else:
            build_site_archive_task.delay(str(archive.pk))
    except Exception as exc:  # the broker is down: say so, never leave it queued
        SiteArchive.objects.filter(pk=archive.pk, status=SiteArchive.QUEUED).update(
            status=SiteArchive.FAILED,
            finished_at=timezone.now(),
            error=background.UNAVAILABLE % {"error": type(exc).__name__},
        )
        messages.error(request, _("The job service is unavailable: the archive was not started."))
        return redirect("casebook:site_archives", code=site.code)
    messages.success(
        request,
        _("Building the case-book archive of %(code)s in the background.") % {"code": site.code},
    )
    return redirect("casebook:site_archives", code=site.code)


@login_required
@require_GET
def archive_status(request, archive_id):
    SiteArchive.fail_stale()
    archive = _archive(request, archive_id)
    return JsonResponse(
        {
            "status": archive.status,
            "label": archive.get_status_display(),
            "cases_done": archive.cases_done,
            "cases_total": archive.cases_total,
            "progress_pct": archive.progress_pct,
            "finished": archive.is_finished,
            "error": archive.error_text,
        }
    )


@login_required
@require_GET
def archive_download(request, archive_id):
    archive = _archive(request, archive_id)
    if archive.status != SiteArchive.SUCCEEDED or not archive.path.is_file():
        raise Http404(_("This archive is not ready."))
    return FileResponse(open(archive.path, "rb"), as_attachment=True, filename=archive.filename)
