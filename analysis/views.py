"""Results dashboard for statisticians and monitors."""

import base64
import hashlib
import json
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from exchange.safe import safe_cell
from registry.access import (
    analysis_patients_for,
    can_open_analyses,
    can_run_analyses,
    monitored_institutions_for,
)

from . import background
from .dataset import iter_dataset_csv
from .forms import RunForm
from .models import UNAVAILABLE, AnalysisRun
from .runs import progress_view
from .tasks import run_analysis_task


def dashboard_tables() -> list[str]:
    """The tables the run page shows. outputs (pandas, scipy, lifelines, matplotlib) is imported
    on the first call, not when the URLs are loaded: every web and Celery process imports this
    module at start-up. reproduction.csv has its own side-by-side table
    (templates/analysis/_reproduction.html); survival_table.csv is in its CSV only."""
    from .outputs import REPRODUCTION, TABLE_FILES

    return [name for name in TABLE_FILES if name not in ("survival_table.csv", REPRODUCTION)]


def __getattr__(name):  # analysis.views.DASHBOARD_TABLES, computed on first use (see above)
    if name == "DASHBOARD_TABLES":
        return dashboard_tables()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _gate(allowed, message):
    def decorator(view):
        @login_required
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        wrapped.__name__ = view.__name__
        return wrapped

    return decorator


# The page and the current dataset (scoped by registry.access.analysis_patients_for).
analyst_required = _gate(
    can_open_analyses, _("Analyses are for working-party statisticians and monitors.")
)
# Runs cover the whole registry: their pages and files are for whole-registry readers.
runs_required = _gate(
    can_run_analyses,
    _(
        "Analysis runs cover every site: they are for working-party statisticians and monitors of "
        "every site."
    ),
)


def _run_meta(run):
    if run is None or run.status != AnalysisRun.SUCCEEDED:
        return None
    meta_path = run.output_dir / "run.json"
    return json.loads(meta_path.read_text()) if meta_path.exists() else None


def _results(run):
    """The run laid out as the paper (analysis.display), its figures served from its files."""
    meta = _run_meta(run)
    if meta is None:
        return None
    # The numerical stack on the first results page, not at start-up (see dashboard_tables).
    from .outputs import REPRODUCTION, reproduction_view, run_sections

    def src(name):
        return reverse("analysis:download", args=[run.pk, name]) + "?inline=1"

    return {
        "meta": meta,
        "reproduction": reproduction_view(run.output_dir)
        if REPRODUCTION in meta["files"]
        else None,
        "files": meta["files"],
        "sections": run_sections(run.output_dir, meta, meta["files"], src),
    }


def _context(run, **extra):
    from . import formatting as fmt  # not at start-up (see dashboard_tables)
    from .outputs import definitions

    parameters = run.parameters if run is not None else {}
    return {
        "run": run,
        "results": _results(run),
        "parameters": fmt.parameter_items(parameters),
        "definitions": definitions(),
        **extra,
    }


@analyst_required
def dashboard(request):
    if not can_run_analyses(request.user):
        # A monitor of some sites: their sites' dataset, no run (runs cover every site).
        sites = (
            monitored_institutions_for(request.user).order_by("code").values_list("code", flat=True)
        )
        return render(request, "analysis/dashboard.html", {"whole_registry": False, "sites": sites})
    AnalysisRun.fail_stale_runs()
    latest = AnalysisRun.objects.filter(status=AnalysisRun.SUCCEEDED).first()
    return render(
        request,
        "analysis/dashboard.html",
        _context(
            latest,
            whole_registry=True,
            form=RunForm(),
            runs=AnalysisRun.objects.select_related("created_by")[:20],
        ),
    )


@analyst_required
@require_GET
def dataset_csv(request):
    """The analysis dataset as it is now (the patients the user may download), streamed:
    memory stays flat in n."""
    patients = analysis_patients_for(request.user)
    response = StreamingHttpResponse(
        iter_dataset_csv(patients), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="analysis_dataset.csv"'
    return response


@runs_required
@require_POST
def start_run(request):
    form = RunForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "analysis/dashboard.html",
            {
                "whole_registry": True,
                "form": form,
                "runs": AnalysisRun.objects.all()[:20],
                "run": None,
                "results": None,
            },
            status=400,
        )
    # The report is written in the language of this page (README "Languages").
    language = translation.get_language() or "en"
    language = language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
    run = AnalysisRun.objects.create(
        created_by=request.user, parameters=form.parameters(), language=language
    )
    if background.enabled():
        # No broker: the run goes on in a thread of this process and the page shows its steps.
        transaction.on_commit(lambda: background.start(run.pk))
        messages.success(request, _("Analysis run started: its steps show below as it goes."))
        return redirect("analysis:run_detail", run_id=run.pk)
    try:
        result = run_analysis_task.delay(str(run.pk))
    except Exception as exc:  # broker down: say so plainly, never leave the run queued
        if run_in_process_failed(run):
            messages.error(
                request,
                _("The analysis failed: %(error_summary)s") % {"error_summary": run.error_summary},
            )
            return redirect("analysis:run_detail", run_id=run.pk)
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=AnalysisRun.FAILED,
            finished_at=timezone.now(),
            error=UNAVAILABLE % {"error": type(exc).__name__},
        )
        messages.error(
            request,
            _(
                "The job service is unavailable: the analysis was not started. "
                "Data entry is not affected; try again later."
            ),
        )
        return redirect("analysis:dashboard")
    AnalysisRun.objects.filter(pk=run.pk).update(celery_task_id=result.id or "")
    messages.success(request, _("Analysis run started."))
    return redirect("analysis:run_detail", run_id=run.pk)


def run_in_process_failed(run) -> bool:
    """With no broker the task runs in-process; its own failure is recorded on the run."""
    run.refresh_from_db()
    return run.status == AnalysisRun.FAILED


@runs_required
def run_detail(request, run_id):
    AnalysisRun.fail_stale_runs()
    run = get_object_or_404(AnalysisRun, pk=run_id)
    return render(request, "analysis/run_detail.html", _context(run, progress=progress_view(run)))


@runs_required
def run_status(request, run_id):
    AnalysisRun.fail_stale_runs()  # the page polls this: a lost worker shows as failed
    run = get_object_or_404(AnalysisRun, pk=run_id)
    progress = progress_view(run)
    return JsonResponse(
        {
            "status": run.status,
            "status_display": run.get_status_display(),
            "progress_pct": run.progress_pct,
            "progress_step": progress["step"],
            "steps": progress["steps"],
            "error": run.error_summary,
            "finished": run.is_finished,
        }
    )


@runs_required
def table_csv(request, run_id, key):
    """One table of the run as the page shows it (formatted text), as CSV."""
    from . import display  # not at start-up (see dashboard_tables)
    from .outputs import run_sections

    run = get_object_or_404(AnalysisRun, pk=run_id, status=AnalysisRun.SUCCEEDED)
    meta = _run_meta(run)
    if meta is None:
        raise Http404(_("No such table in this run."))
    sections = run_sections(run.output_dir, meta, meta["files"], src=lambda name: name)
    table = next((t for t in display.all_tables(sections) if t.key == key), None)
    if table is None:
        raise Http404(_("No such table in this run."))
    response = HttpResponse(table.to_csv(cell=safe_cell), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{key}_formatted.csv"'
    return response


INLINE = (".svg", ".png")
_STYLE = re.compile(rb"<style>(.*?)</style>", re.S)


@runs_required
def download(request, run_id, filename):
    run = get_object_or_404(AnalysisRun, pk=run_id, status=AnalysisRun.SUCCEEDED)
    meta_path = run.output_dir / "run.json"
    files = json.loads(meta_path.read_text())["files"] if meta_path.exists() else []
    if filename not in files:  # only the run's own files, never a path
        raise Http404(_("No such file in this run."))
    path = run.output_dir / filename
    if filename == "report.html" and "download" not in request.GET:
        return _report_inline(path)
    inline = filename.endswith(INLINE) and "inline" in request.GET
    return FileResponse(open(path, "rb"), as_attachment=not inline, filename=filename)


def _report_inline(path):
    """report.html opened in the browser. Its one <style> block is allowed by its hash, so the
    site's content security policy (no inline styles) still holds for everything else; it has
    no script."""
    content = path.read_bytes()
    response = HttpResponse(content, content_type="text/html; charset=utf-8")
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
        for block in _STYLE.findall(content)
    ]
    if hashes:
        response._csp_update = {"style-src": hashes}
    response["Content-Disposition"] = 'inline; filename="report.html"'
    return response
