"""Results dashboard for statisticians and monitors."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from registry.access import (
    analysis_patients_for,
    can_open_analyses,
    can_run_analyses,
    monitored_institutions_for,
)

from .dataset import iter_dataset_csv
from .forms import RunForm
from .models import AnalysisRun
from .tasks import run_analysis_task

COLLAPSED_ROWS_SHOWN = 100


def dashboard_tables() -> list[str]:
    """The tables the run page shows. outputs (pandas, scipy, lifelines, matplotlib) is imported
    on the first call, not when the URLs are loaded: every web and Celery process imports this
    module at start-up. reproduction.csv has its own side-by-side table
    (templates/analysis/_reproduction.html)."""
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
    can_open_analyses, "Analyses are for working-party statisticians and monitors."
)
# Runs cover the whole registry: their pages and files are for whole-registry readers.
runs_required = _gate(
    can_run_analyses,
    "Analysis runs cover every site: they are for working-party statisticians and monitors of "
    "every site.",
)


def _results(run):
    import pandas as pd  # on the first results page, not at start-up (see dashboard_tables)

    from .outputs import REPRODUCTION, TABLE_FILES

    if run is None or run.status != AnalysisRun.SUCCEEDED:
        return None
    out = run.output_dir
    if not (out / "run.json").exists():
        return None
    meta = json.loads((out / "run.json").read_text())
    tables = []
    collapsed = meta.get("collapsed_tables", [])
    for name in dashboard_tables():
        frame = pd.read_csv(out / name, keep_default_na=False)
        if name in collapsed and len(frame) > COLLAPSED_ROWS_SHOWN:
            # Step-function tables reach thousands of rows at national scale (~1 s to render on
            # every visit at 100,000 patients); the page shows their start, the CSV all of it.
            frame = frame.head(COLLAPSED_ROWS_SHOWN)
        tables.append(
            (
                TABLE_FILES[name],
                name,
                frame.to_html(
                    index=False,
                    classes="table table-sm table-striped",
                    border=0,
                    float_format=lambda x: f"{x:.3f}",
                ),
            )
        )
    figures = [f for f in meta["files"] if f.endswith(".svg")]
    return {
        "meta": meta,
        "reproduction": _reproduction(out) if REPRODUCTION in meta["files"] else None,
        "tables": tables,
        "figures": figures,
        "files": meta["files"],
        "collapsed_rows": COLLAPSED_ROWS_SHOWN,
    }


def _reproduction(out) -> dict:
    """The printed-vs-recomputed rows of a run and their counts."""
    import pandas as pd  # not at start-up (see dashboard_tables)

    from .outputs import REPRODUCTION, TABLE_FILES
    from .reproduction import summary

    frame = pd.read_csv(out / REPRODUCTION, dtype=str, keep_default_na=False)
    return {
        "title": TABLE_FILES[REPRODUCTION],
        "name": REPRODUCTION,
        "rows": frame.to_dict("records"),
        "summary": summary(frame),
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
        {
            "whole_registry": True,
            "form": RunForm(),
            "runs": AnalysisRun.objects.select_related("created_by")[:20],
            "run": latest,
            "results": _results(latest),
        },
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
    run = AnalysisRun.objects.create(created_by=request.user, parameters=form.parameters())
    try:
        result = run_analysis_task.delay(str(run.pk))
    except Exception as exc:  # broker down: say so plainly, never leave the run queued
        if run_in_process_failed(run):
            messages.error(request, f"The analysis failed: {run.error.splitlines()[0]}")
            return redirect("analysis:run_detail", run_id=run.pk)
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=AnalysisRun.FAILED,
            finished_at=timezone.now(),
            error=f"The job service is unavailable ({type(exc).__name__}); try again later.",
        )
        messages.error(
            request,
            "The job service is unavailable: the analysis was not started. "
            "Data entry is not affected; try again later.",
        )
        return redirect("analysis:dashboard")
    AnalysisRun.objects.filter(pk=run.pk).update(celery_task_id=result.id or "")
    messages.success(request, "Analysis run started.")
    return redirect("analysis:run_detail", run_id=run.pk)


def run_in_process_failed(run) -> bool:
    """With no broker the task runs in-process; its own failure is recorded on the run."""
    run.refresh_from_db()
    return run.status == AnalysisRun.FAILED


@runs_required
def run_detail(request, run_id):
    AnalysisRun.fail_stale_runs()
    run = get_object_or_404(AnalysisRun, pk=run_id)
    return render(request, "analysis/run_detail.html", {"run": run, "results": _results(run)})


@runs_required
def run_status(request, run_id):
    AnalysisRun.fail_stale_runs()  # the page polls this: a lost worker shows as failed
    run = get_object_or_404(AnalysisRun, pk=run_id)
    return JsonResponse(
        {
            "status": run.status,
            "progress_pct": run.progress_pct,
            "progress_step": run.progress_step,
            "error": run.error,
            "finished": run.is_finished,
        }
    )


@runs_required
def download(request, run_id, filename):
    run = get_object_or_404(AnalysisRun, pk=run_id, status=AnalysisRun.SUCCEEDED)
    meta_path = run.output_dir / "run.json"
    files = json.loads(meta_path.read_text())["files"] if meta_path.exists() else []
    if filename not in files:  # only the run's own files, never a path
        raise Http404("No such file in this run.")
    inline = filename.endswith((".svg", ".png")) and "inline" in request.GET
    return FileResponse(
        open(run.output_dir / filename, "rb"), as_attachment=not inline, filename=filename
    )
